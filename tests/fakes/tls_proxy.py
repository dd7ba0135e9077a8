"""A TLS front for a plain Redis, as a managed Redis with `rediss://` would be: it accepts TLS
connections with a self-signed certificate (made by the `openssl` command) and pipes each one
to the Redis behind it. Runs its own event loop in a thread; `with TlsProxy(...) as proxy:`."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import threading
from pathlib import Path
from urllib.parse import quote

from ccfleet.embedded_redis import free_port

_OPENSSL_TIMEOUT_S = 30


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1, made by `openssl req`."""
    cert, key = directory / "redis-cert.pem", directory / "redis-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=_OPENSSL_TIMEOUT_S,
    )  # fmt: skip
    return cert, key


class TlsProxy:
    def __init__(self, directory: Path, *, backend_port: int) -> None:
        self.cert, key = self_signed_certificate(directory)
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(self.cert, key)
        self.backend_port = backend_port
        self.port = free_port()
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def url(self, password: str | None = None) -> str:
        auth = f":{quote(password, safe='')}@" if password else ""
        return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={self.cert}"

    def __enter__(self) -> TlsProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(timeout=10)
        return self

    def __exit__(self, *_exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, ssl=self._context
        )

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        connections = asyncio.all_tasks() - {asyncio.current_task()}
        for task in connections:
            task.cancel()
        # Ended here, not left to be collected after the loop closed (a warning each then).
        await asyncio.gather(*connections, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        backend_r, backend_w = await asyncio.open_connection("127.0.0.1", self.backend_port)
        try:
            await asyncio.gather(_pipe(client_r, backend_w), _pipe(backend_r, client_w))
        finally:
            for writer in (client_w, backend_w):
                writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError, RuntimeError):
        writer.write_eof()
