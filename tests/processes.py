"""Test-side process helpers: run a ccfleet role as a real child process, find CLI processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.waiting import wait_until as wait_until  # re-exported: callers import it from here


class ManagedProcess:
    """A ccfleet process (`python -m ccfleet ROLE`) with its output in a log file."""

    def __init__(self, args: list[str], *, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ccfleet", *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signum)

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def cli_processes(claude_bin: str) -> list[int]:
    """Pids of running processes whose executable is this claude binary."""
    target = os.path.realpath(claude_bin)
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.path.realpath(entry / "exe") == target:
                pids.append(int(entry.name))
    return pids
