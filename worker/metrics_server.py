"""A worker's /metrics at CCFLEET_METRICS_HOST:CCFLEET_METRICS_PORT: prometheus_client's own
HTTP server, without authentication (its address is what keeps it private).

It serves from a thread of its own (prometheus_client's design), started with the worker's
start-up hook and shut down and joined by its shut-down hook. Port 0: no server.
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from shared.telemetry.metrics import FleetMetrics

_JOIN_TIMEOUT_S = 5.0


class MetricsServer:
    def __init__(self, metrics: FleetMetrics, *, host: str, port: int) -> None:
        self._metrics = metrics
        self._port = port
        self._host = host
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._port and self._server is None:
            self._server, self._thread = start_http_server(
                self._port, addr=self._host, registry=self._metrics.registry
            )

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None and thread is not None:
            server.shutdown()
            server.server_close()
            thread.join(_JOIN_TIMEOUT_S)
