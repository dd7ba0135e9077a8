"""A TCP proxy in front of Redis that can cut the network without closing any connection.

Once `partition()` is called no byte passes either way, and new connections are accepted but
never forwarded: what a client sees when a switch between it and Redis dies (no reset, no
refusal, just silence). A client without socket timeouts then waits for ever.
"""

from __future__ import annotations

import selectors
import socket
import threading


class PartitionProxy:
    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._peers: dict[socket.socket, socket.socket] = {}
        self._held: list[socket.socket] = []
        self._partitioned = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"partition-proxy-{self.port}")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PartitionProxy:
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._thread.start()
        return self

    def partition(self) -> None:
        self._partitioned.set()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        for sock in [self._listener, *self._peers, *self._held]:
            sock.close()
        self._selector.close()

    def __enter__(self) -> PartitionProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        cut = False
        while not self._stopping.is_set():
            if self._partitioned.is_set() and not cut:
                for peer in self._peers:
                    self._selector.unregister(peer)
                cut = True
            for key, _events in self._selector.select(timeout=0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    self._accept(forward=not cut)
                else:
                    self._forward(sock)

    def _accept(self, *, forward: bool) -> None:
        client, _address = self._listener.accept()
        if not forward:
            self._held.append(client)  # connected, and never answered
            return
        upstream = socket.create_connection(("127.0.0.1", self._target_port))
        self._peers[client] = upstream
        self._peers[upstream] = client
        self._selector.register(client, selectors.EVENT_READ)
        self._selector.register(upstream, selectors.EVENT_READ)

    def _forward(self, source: socket.socket) -> None:
        destination = self._peers[source]
        try:
            data = source.recv(65536)
            if data:
                destination.sendall(data)
                return
        except OSError:
            pass
        for sock in (source, destination):  # one side closed: close the pair
            self._selector.unregister(sock)
            del self._peers[sock]
            sock.close()
