"""Role processes forked from a pre-imported zygote (tests/role_zygote.py) instead of started
with `python -m`: the client side, one zygote per test process.

A role process spends ~1.5 CPU-s importing before it does anything; forked from a process that
has imported it all, it starts with that done (bench/role_start_cpu.py measures both). The
child is the zygote's, not ours: the zygote reaps it and tells us its pid and exit status
(lines read by a thread here), and `ForkedRole` answers as the Popen it replaces does
(poll, wait, send_signal, kill, returncode). Signals go straight to the pid, as Popen sends them.

`shared_role_forks()` starts the zygote on first use; it stops when this process closes its
stdin, at exit or by dying. CCFLEET_TEST_ROLE_FORKS=0 turns it off: every role then starts
with `python -m`, as tests of the start itself always do (they make a ManagedProcess without
`forks`).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO

_START_TIMEOUT_S = 60.0  # the zygote imports everything before its first fork: ~2 s of CPU

_ZYGOTE_ENV = {"LANG": "C.UTF-8"}
"""The variables an interpreter reads at startup that the zygote starts with; a request with
others (PYTHON*, LC_*, another LANG) is started with `python -m` instead."""


def _startup_variables(env: dict[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in env.items()
        if name.startswith(("PYTHON", "LC_")) or name == "LANG"
    }


class ForkedRole:
    """A child of the zygote, seen through the zygote's reports: the Popen interface the tests
    use."""

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.pid = 0
        self.returncode: int | None = None
        self._lost = False  # the zygote died first: this exit status is unknown
        self._forked = threading.Event()
        self._exited = threading.Event()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._exited.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        if self.returncode is None:
            raise RuntimeError(f"the role zygote died before {self.args} ended: exit unknown")
        return self.returncode

    def send_signal(self, sig: int) -> None:
        # As Popen: nothing once the exit is known. Until the zygote reaps it the pid is this
        # child (a zombie at worst), so the signal cannot reach another process.
        if self.returncode is None and not self._lost:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class RoleForks:
    """One running zygote and the children it forked for us."""

    def __init__(self) -> None:
        fd, log = tempfile.mkstemp(prefix="ccfleet-role-zygote-", suffix=".log")
        os.close(fd)
        self.log_path = Path(log)
        with self.log_path.open("ab") as stderr:
            self._zygote = subprocess.Popen(
                [sys.executable, "-m", "tests.role_zygote"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env={"PATH": os.environ["PATH"], **_ZYGOTE_ENV},
                cwd=Path(__file__).parent.parent,  # the checkout, where `tests` imports from
                start_new_session=True,  # no Ctrl-C of ours: it ends when its stdin does
            )
        self._lock = threading.Lock()
        self._next_id = 0
        self._children: dict[int, ForkedRole] = {}
        self._reader = threading.Thread(target=self._read_reports, name="role-zygote", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        """The zygote's."""
        return self._zygote.pid

    def can_serve(self, env: dict[str, str]) -> bool:
        return _startup_variables(env) == _ZYGOTE_ENV and self._zygote.poll() is None

    def spawn(
        self, module: str, args: list[str], env: dict[str, str], log_path: Path
    ) -> ForkedRole:
        child = ForkedRole([sys.executable, "-m", module, *args])
        request = {"module": module, "args": args, "env": env, "cwd": os.getcwd()}
        with self._lock:
            self._next_id += 1
            self._children[self._next_id] = child
            line = json.dumps({"id": self._next_id, **request, "log_path": str(log_path)})
            stdin = self._pipe(self._zygote.stdin)
            stdin.write(line.encode() + b"\n")
            stdin.flush()
        if not child._forked.wait(_START_TIMEOUT_S) or child._lost:
            raise RuntimeError(f"the role zygote forked nothing: {self.log_text()[-3000:]}")
        return child

    def close(self) -> None:
        """Its stdin closed, the zygote kills what it still runs for us and exits."""
        with contextlib.suppress(BrokenPipeError):
            self._pipe(self._zygote.stdin).close()
        self._zygote.wait(timeout=30)
        self._reader.join(timeout=30)
        self._pipe(self._zygote.stdout).close()
        self.log_path.unlink(missing_ok=True)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _read_reports(self) -> None:
        for line in self._pipe(self._zygote.stdout):
            report = json.loads(line)
            child = self._children[report["id"]]
            if "pid" in report:
                child.pid = report["pid"]
                child._forked.set()
            else:
                child.returncode = report["exit"]
                del self._children[report["id"]]
                child._exited.set()
        for child in list(self._children.values()):  # the zygote is gone
            child._lost = True
            child._forked.set()
            child._exited.set()

    @staticmethod
    def _pipe(stream: IO[bytes] | None) -> IO[bytes]:
        assert stream is not None  # both pipes are asked for in __init__
        return stream


@functools.cache
def shared_role_forks() -> RoleForks | None:
    """This process's zygote, started on first call; None when CCFLEET_TEST_ROLE_FORKS=0."""
    if os.environ.get("CCFLEET_TEST_ROLE_FORKS", "1") == "0":
        return None
    forks = RoleForks()
    atexit.register(forks.close)
    return forks
