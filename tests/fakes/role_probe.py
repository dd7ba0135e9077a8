"""A stand-in role for tests of how a role process starts (tests/integration/test_role_forks.py):
`python -m tests.fakes.role_probe ACTION [ARG]` reports what a started process sees, or ends
as told.

  report          prints one JSON line: pid, session, cwd, argv, sys.path[0], environment,
                  threads, signal dispositions, the fds open and stdin's target
  exit N          raise SystemExit(N)
  raise           an uncaught exception
  signal N        kill itself with signal N
  wait            print "waiting" and sleep until a signal ends it
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
import time


def report() -> None:
    handlers = {
        signal.Signals(s).name: repr(signal.getsignal(s))
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGCHLD, signal.SIGHUP)
    }
    print(
        json.dumps(
            {
                "pid": os.getpid(),
                "sid": os.getsid(0),
                "cwd": os.getcwd(),
                "argv": sys.argv,
                "path0": sys.path[0],
                "environ": dict(os.environ),
                "tmpdir": tempfile.gettempdir(),
                "threads": threading.active_count(),
                "handlers": handlers,
                "blocked": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
                "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
                "stdin": os.readlink("/proc/self/fd/0"),
                "stdout_encoding": sys.stdout.encoding,
            }
        )
    )


def main(action: str, arg: str = "") -> None:
    if action == "report":
        report()
    elif action == "exit":
        print("exiting", arg)
        raise SystemExit(int(arg))
    elif action == "raise":
        raise LookupError("the probe's uncaught exception")
    elif action == "signal":
        os.kill(os.getpid(), int(arg))
    elif action == "wait":
        print("waiting", flush=True)
        while True:
            time.sleep(60)


if __name__ == "__main__":
    main(*sys.argv[1:])
