"""Every Redis client of ccfleet is built here, with every wait bounded.

Without a socket timeout a command sent into a network partition waits for ever, and the
outage handling (shared/redis_outage.py) never runs. So: a timeout on connecting and on each
command, TCP keepalive probes that find a dead peer under an idle connection (a pub/sub
subscriber), and a PING before reusing a connection that sat idle. arq's own RedisSettings
cannot pass these, so the arq pool is built here too and handed to arq.

No ccfleet command blocks inside Redis (workers poll, relays wait in Python), so one
command timeout fits every call.
"""

from __future__ import annotations

import socket
from typing import Any

from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from shared import arq_codec
from shared.settings import Settings

_KEEPALIVE_IDLE_S = 10
_KEEPALIVE_INTERVAL_S = 5
_KEEPALIVE_PROBES = 3


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
        "socket_connect_timeout": settings.redis_connect_timeout_s,
        "socket_timeout": settings.redis_command_timeout_s,
        "socket_keepalive": True,
        "socket_keepalive_options": keepalive,
        "health_check_interval": settings.redis_health_check_s,
    }


def arq_redis(settings: Settings) -> ArqRedis:
    """The arq client of a front end or worker (jobs as JSON), connecting lazily."""
    pool = ConnectionPool.from_url(settings.effective_redis_url(), **connection_options(settings))
    client = ArqRedis(
        pool,
        job_serializer=arq_codec.serialize,
        job_deserializer=arq_codec.deserialize,
        default_queue_name=settings.queue_name,
    )
    client.auto_close_connection_pool = True  # closed with the client, as from_url does
    return client
