"""The role zygote: a fork server that has imported what `python -m ccfleet api|worker` imports,
and forks a child per request that becomes that process.

Why: ~150 tests start their own stack, each role a child process that spends ~1.5 CPU-s
importing (fastapi, pydantic, arq, redis, typer, rich, the project) before it does anything:
~500 CPU-s of a ~1,400 CPU-s suite on a 2-core machine. A fork of a process that has already
imported them starts with that work done (figures: bench/role_start_cpu.py).

Run as `python -m tests.role_zygote` by tests/role_forks.py (the client, one zygote per pytest
process). Protocol, one JSON object a line:
- stdin, a request: {"id", "module", "args", "env", "cwd", "log_path"};
- stdout, replies: {"id", "pid"} once the child is forked, {"id", "exit"} once it is reaped,
  `exit` like Popen's returncode (negative: the signal that killed it).
When stdin ends (the client closed it, or died) the zygote kills its children's process groups
and exits.

A child becomes what `python -m MODULE ARGS` would be: its own session, stdout and stderr
appended to the log file, stdin /dev/null, the given cwd (also sys.path[0], as `-m` puts it),
os.environ replaced by the given env (through putenv, so its own children see it), the
signal dispositions of a fresh interpreter, then the module run as __main__ at the top level
of this script: SystemExit codes, a traceback and 1 on an uncaught exception, atexit and
flushing stdio, death by signal (uvicorn re-raises SIGTERM) all happen as in `python -m`.
The zygote runs no thread and no event loop before it forks, and keeps no fd but its pipes.

What a fork cannot give: the interpreter options and startup variables (PYTHON*, LANG, LC_*)
are the zygote's (the client serves only requests whose startup variables are the zygote's);
/proc/PID/cmdline and /proc/PID/environ show the zygote's; and anything a preloaded module
computed from the environment at import keeps the zygote's value: checked for api and worker
(`ccfleet.main.UP_REDIS_URL_FILE` reads HOME at import, used only by `ccfleet up`, which is not
forked; tempfile's cached directory is forgotten in the child).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import runpy
import select
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

PRELOADED = ("ccfleet.main", "api.app", "worker.main")
"""What `ccfleet api` and `ccfleet worker` import, by name: this script is run by tests that
must not import them themselves."""

STARTUP_HANDLERS: dict[int, object] = {
    signal.SIGINT: signal.default_int_handler,
    signal.SIGPIPE: signal.SIG_IGN,
    signal.SIGXFSZ: signal.SIG_IGN,
}
"""The dispositions a fresh interpreter sets; every other signal starts at SIG_DFL."""


@dataclass(frozen=True)
class RoleRequest:
    id: int
    module: str
    args: list[str]
    env: dict[str, str]
    cwd: str
    log_path: str


def preload() -> None:
    for name in PRELOADED:
        importlib.import_module(name)
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:  # a fork keeps only the forking thread: its locks could be held forever
        raise RuntimeError(f"the zygote runs {threads} threads after importing; it cannot fork")
    gc.freeze()  # the preloaded objects stay out of the children's collections (and pages)


def reply(message: dict[str, int]) -> None:
    # A client that died reads no more: the zygote goes on to see its stdin end, and kills.
    with contextlib.suppress(BrokenPipeError):
        os.write(1, (json.dumps(message) + "\n").encode())


class Zygote:
    """The serving loop: forks on requests, reaps children (through pidfds), reports both."""

    def __init__(self) -> None:
        self.children: dict[int, tuple[int, int]] = {}  # pidfd: (request id, pid)
        self.pending = b""

    def serve(self) -> RoleRequest | None:
        """In a forked child: the request it is to become. In the zygote: None once stdin ends."""
        while True:
            readable, _, _ = select.select([0, *self.children], [], [])
            for fd in readable:
                if fd != 0:
                    self.reap(fd)
                    continue
                chunk = os.read(0, 1 << 16)
                if not chunk:
                    self.kill_all()
                    return None
                if (request := self.take_requests(chunk)) is not None:
                    return request

    def take_requests(self, chunk: bytes) -> RoleRequest | None:
        self.pending += chunk
        while b"\n" in self.pending:
            line, self.pending = self.pending.split(b"\n", 1)
            request = RoleRequest(**json.loads(line))
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                for pidfd in self.children:
                    os.close(pidfd)
                return request
            self.children[os.pidfd_open(pid)] = (request.id, pid)
            reply({"id": request.id, "pid": pid})
        return None

    def reap(self, pidfd: int) -> None:
        request_id, pid = self.children.pop(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        reply({"id": request_id, "exit": os.waitstatus_to_exitcode(status)})

    def kill_all(self) -> None:
        """The client is gone: nobody would stop these children."""
        for pidfd in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.children[pidfd][1], signal.SIGKILL)
            self.reap(pidfd)


def become(request: RoleRequest) -> None:
    """Turn this forked child into `python -m request.module` (but for running it)."""
    os.setsid()
    log = os.open(request.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # as Popen's close_fds: the zygote's pipes too
    os.chdir(request.cwd)
    os.environ.clear()
    os.environ.update(request.env)
    tempfile.tempdir = None  # recomputed from this TMPDIR if asked
    for signum in signal.valid_signals():
        wanted = STARTUP_HANDLERS.get(signum, signal.SIG_DFL)
        if signum not in (signal.SIGKILL, signal.SIGSTOP) and signal.getsignal(signum) != wanted:
            signal.signal(signum, wanted)  # type: ignore[arg-type]  # a handler from the table
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    sys.argv = ["-m", *request.args]  # run_module puts the module's path first, as `-m` does
    sys.path[0] = str(Path(request.cwd).resolve())


def main() -> None:
    preload()
    request = Zygote().serve()
    if request is None:
        return
    become(request)
    runpy.run_module(request.module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
