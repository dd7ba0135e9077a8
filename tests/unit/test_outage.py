"""Riding out a Redis outage: the grace runs from the outage, not from the call."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from shared.broker.outage import outlasting_outage


async def test_an_outage_that_begins_after_a_long_wait_still_gets_the_whole_grace() -> None:
    # A relay waits for its job's next chunk longer than the grace; then Redis restarts.
    calls = 0

    async def wait_for_chunk() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.3)
            raise RedisConnectionError("Connection closed by server.")
        return "chunk"

    assert await outlasting_outage(wait_for_chunk, limit_s=0.2) == "chunk"


async def test_an_outage_longer_than_the_grace_raises_its_last_error() -> None:
    calls = 0

    async def refused() -> None:
        nonlocal calls
        calls += 1
        raise RedisConnectionError(f"refused {calls}")

    with pytest.raises(RedisConnectionError) as raised:
        await outlasting_outage(refused, limit_s=0.2)
    assert calls > 1 and str(raised.value) == f"refused {calls}"
