"""Every Redis client of ccfleet is built here, with every wait bounded.

Without a socket timeout a command sent into a network partition waits for ever, and the
outage handling (shared/broker/outage.py) never runs. So: a timeout on connecting and on each
command, TCP keepalive probes that find a dead peer under an idle connection (a pub/sub
subscriber), and a PING before reusing a connection that sat idle. arq's own RedisSettings
cannot pass these, so the arq pool is built here too and handed to arq.

With Redis Sentinel (CCFLEET_REDIS_SENTINELS) every client, pub/sub included, asks the
sentinels where the primary is whenever it connects, so after a failover its next connection
goes to the new primary; one that was talking to the old one (now a replica) is dropped on
its first refused write. The outage handling rides out the failover itself.

No ccfleet command blocks inside Redis (workers poll, relays wait in Python), so one
command timeout fits every call.

redis-py bounds a send with `asyncio.wait_for` once a socket timeout is set; on Python 3.11
wait_for swallows a cancellation that arrives as the send completes (measured: 32 of 200
cancelled loops of SET went on running). A job's abort or time limit must never be lost, so
our connections bound a send with `asyncio.timeout` instead, which keeps the cancellation.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
from typing import Any

from arq.connections import ArqRedis
from redis.asyncio import Redis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    ConnectionPool,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.queue import arq_adapter
from shared.settings import RedisSettings, Settings

_KEEPALIVE_IDLE_S = 10
_KEEPALIVE_INTERVAL_S = 5
_KEEPALIVE_PROBES = 3


class _CancellableSends(AbstractConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._command_timeout_s = self.socket_timeout
        self._sends = 0  # in progress: nested (a connect or health check sends) or concurrent

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        # Unset while any send runs, redis-py sends unwrapped; reads keep their own timeout.
        self._sends += 1
        self.socket_timeout = None
        try:
            async with asyncio.timeout(self._command_timeout_s):
                await super().send_packed_command(command, check_health)
        except TimeoutError as exc:  # ours: redis-py turns its own into RedisTimeoutError
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from exc
        finally:
            self._sends -= 1
            if not self._sends:
                self.socket_timeout = self._command_timeout_s


class _TcpConnection(_CancellableSends, Connection):
    pass


class _TlsConnection(_CancellableSends, SSLConnection):
    pass


class _UnixConnection(_CancellableSends, UnixDomainSocketConnection):
    pass


class _SentinelTcpConnection(_CancellableSends, SentinelManagedConnection):
    pass


class _SentinelTlsConnection(_CancellableSends, SentinelManagedSSLConnection):
    pass


class _SentinelPool(SentinelConnectionPool):
    """Connections to the primary the sentinels name; closed, it closes theirs too."""

    async def disconnect(self, inuse_connections: bool = True) -> None:
        await super().disconnect(inuse_connections)
        if inuse_connections:  # the pool is closing (or resetting): sentinels reconnect lazily
            for sentinel in self.sentinel_manager.sentinels:
                await sentinel.connection_pool.disconnect()


def connection_pool(settings: Settings, *, timeout_s: float | None = None) -> ConnectionPool:
    """Connections to `settings`' Redis (its URL: redis://, rediss:// or unix://; or the
    primary its sentinels name), waits bounded; `timeout_s` shortens them (a command line)."""
    options = {**connection_options(settings), **parse_url(settings.redis.effective_url())}
    if timeout_s is not None:
        options["socket_connect_timeout"] = options["socket_timeout"] = timeout_s
    plain = options.pop("connection_class", Connection)
    if settings.redis.sentinels:
        return _sentinel_pool(settings.redis, options, tls=plain is SSLConnection)
    if plain is UnixDomainSocketConnection:
        options.pop("socket_keepalive")  # not a TCP socket
        options.pop("socket_keepalive_options")
    return ConnectionPool(connection_class=_bounded(plain), **options)


def _sentinel_pool(redis: RedisSettings, options: dict[str, Any], *, tls: bool) -> _SentinelPool:
    options.pop("host", None)  # the sentinels say where the primary is
    options.pop("port", None)
    # The sentinels: the same timeouts, password and TLS; they have no database.
    sentinel_options = {key: value for key, value in options.items() if key != "db"}
    sentinels = Sentinel(  # type: ignore[no-untyped-call]  # redis-py 5 leaves it untyped
        redis.sentinel_addresses(), sentinel_kwargs={**sentinel_options, "ssl": tls}
    )
    connection = _SentinelTlsConnection if tls else _SentinelTcpConnection
    return _SentinelPool(  # type: ignore[no-untyped-call]  # redis-py 5 leaves it untyped
        redis.sentinel_master, sentinels, connection_class=connection, **options
    )


def _bounded(plain: object) -> type[Connection] | type[UnixDomainSocketConnection]:
    if plain is SSLConnection:
        return _TlsConnection
    if plain is UnixDomainSocketConnection:
        return _UnixConnection
    return _TcpConnection


def connection_options(settings: Settings) -> dict[str, Any]:
    """redis-py connection keywords bounding every wait."""
    keepalive: dict[int, int] = {}
    if hasattr(socket, "TCP_KEEPIDLE"):  # Linux; elsewhere the system's keepalive timing
        keepalive = {
            socket.TCP_KEEPIDLE: _KEEPALIVE_IDLE_S,
            socket.TCP_KEEPINTVL: _KEEPALIVE_INTERVAL_S,
            socket.TCP_KEEPCNT: _KEEPALIVE_PROBES,
        }
    return {
        "socket_connect_timeout": settings.redis.connect_timeout_s,
        "socket_timeout": settings.redis.command_timeout_s,
        "socket_keepalive": True,
        "socket_keepalive_options": keepalive,
        "health_check_interval": settings.redis.health_check_s,
    }


def redis_client(settings: Settings, *, timeout_s: float | None = None) -> Redis:
    """A plain client (the `ccfleet` command's), connecting lazily, closing its pool."""
    return Redis.from_pool(connection_pool(settings, timeout_s=timeout_s))


def arq_redis(settings: Settings) -> ArqRedis:
    """The arq client of a front end or worker (jobs as JSON), connecting lazily."""
    return arq_adapter.arq_client(connection_pool(settings), queue_name=settings.queue.name)
