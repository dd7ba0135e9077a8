"""Every Redis URL scheme gets connections with bounded waits (nothing connects here)."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)

from shared.broker.connection import connection_pool
from shared.settings import Settings


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://:secret@redis.internal:6380/2", Connection),
        ("rediss://redis.internal:6380/0", SSLConnection),
        ("unix:///run/redis.sock?db=1", UnixDomainSocketConnection),
    ],
)
def test_each_url_scheme_gets_its_connection_kind_with_a_command_timeout(
    url: str, kind: type[AbstractConnection]
) -> None:
    settings = Settings(redis_url=url, redis_command_timeout_s=7)
    connection = connection_pool(settings).make_connection()  # type: ignore[no-untyped-call]  # redis-py 5 leaves it untyped
    assert isinstance(connection, kind)
    assert connection.socket_timeout == 7
    assert connection.socket_connect_timeout == settings.redis.connect_timeout_s
    assert connection.health_check_interval == settings.redis.health_check_s
