"""Test-side process helpers: run a ccfleet role as a real child process, find CLI processes,
reach a front end over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from tests import loopback
from tests.role_forks import RoleForks
from tests.waiting import wait_until as wait_until  # re-exported: callers import it from here


class RoleProcess(Protocol):
    """What tests use of a role's process: a Popen, or a child of the role zygote."""

    @property
    def pid(self) -> int: ...
    @property
    def returncode(self) -> int | None: ...
    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def kill(self) -> None: ...


class PortReservations:
    """Free loopback ports, each held (bound, SO_REUSEADDR, not listening) until `release`:
    a port handed out twice would start two servers on it, and the second's bind would fail.
    Asking the kernel for a free port and closing the socket can give the same port again at
    once (2 in 20,000 calls here), and other processes can take it meanwhile; while a port is
    held, the kernel gives it to no other bind to port 0, and the server it was reserved for
    binds and listens on it all the same (it sets SO_REUSEADDR, as uvicorn does)."""

    def __init__(self) -> None:
        self._held: list[socket.socket] = []

    def take(self) -> int:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._held.append(sock)
        port: int = sock.getsockname()[1]
        return port

    def release(self) -> None:
        for sock in self._held:
            sock.close()
        self._held.clear()


class ManagedProcess:
    """A ccfleet process (`python -m ccfleet ROLE`) with its output in a log file."""

    def __init__(
        self,
        args: list[str],
        *,
        env: dict[str, str],
        log_path: Path,
        module: str = "ccfleet",
        forks: RoleForks | None = None,
    ) -> None:
        """`module`: another entry point run the same way (a bench's instrumented front end).
        `forks`: forked from that zygote when it can serve `env` (tests/role_forks.py), else
        started with `python -m`."""
        self.log_path = log_path
        self._log = log_path.open("ab")
        self._terminated = False
        self.proc: RoleProcess
        if forks is not None and forks.can_serve(env):
            self.proc = forks.spawn(module, args, env, log_path)
        else:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", module, *args],
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

    def terminate(self) -> None:
        """SIGTERM, once: a second one could cut a graceful stop short."""
        if not self._terminated:
            self._terminated = True
            self.signal(signal.SIGTERM)

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.terminate()
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
        return loopback.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def held_post(base_url: str, path: str, body: dict[str, Any]) -> Iterator[socket.socket]:
    """A POST whose connection stays open until the block ends, whatever the server does;
    leaving the block is the client going away."""
    url = urlsplit(base_url)
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(head.encode() + payload)
        yield sock


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
