"""A TCP proxy in front of Redis that blinks once, at a chosen command.

The first time a client sends the command `command` (say "INFO": the word as RESP sends it,
so CLIENT SETINFO does not count), the proxy drops every connection before that command
reaches Redis, and for `down_s` closes each new one at once: what a client sees when Redis
restarts at that very instant. Then it forwards again. It lets a test put an outage exactly
between two calls of a start-up, which no timing can.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable


class BlinkProxy:
    def __init__(self, target_port: int, *, command: str, down_s: float) -> None:
        self._target_port = target_port
        self._trigger = f"${len(command)}\r\n{command}\r\n".encode()
        self._down_s = down_s
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._up_at = 0.0  # monotonic time the blink ends; 0 before it
        self._threads: list[threading.Thread] = []
        self.blinked = threading.Event()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> BlinkProxy:
        self._spawn(self._accept)
        return self

    def stop(self) -> None:
        _close(self._listener)  # shut down first: a close alone does not wake accept()
        self._drop_all()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> BlinkProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # stopped
            if time.monotonic() < self._up_at:
                client.close()  # Redis is "restarting"
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self._target_port))
            except OSError:
                client.close()  # Redis itself is away
                continue
            with self._lock:
                self._sockets |= {client, server}
            self._spawn(self._pump, client, server, True)
            self._spawn(self._pump, server, client, False)

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        while data := _received(source):
            if from_client and self._trigger in data and not self.blinked.is_set():
                self._blink()
                return
            try:
                sink.sendall(data)
            except OSError:
                break
        _close(source, sink)

    def _blink(self) -> None:
        self._up_at = time.monotonic() + self._down_s
        self.blinked.set()
        self._drop_all()

    def _drop_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _close(sock)


def _received(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""  # dropped


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
