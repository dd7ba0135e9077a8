"""The front end's request figures writer against a real Redis: how many writes it makes."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from api.telemetry.request_stats_writer import RequestStatsWriter
from shared.telemetry.request_stats import RequestOutcome, read_request_stats


async def test_outcomes_that_come_spread_out_wait_for_the_next_write_not_each_its_own(
    redis: Redis,
) -> None:
    """A thousand streams ending over a second or two: a write, then a pause that gathers the
    rest, instead of a write for each few outcomes as they trickle in (6 % of a front end's
    CPU while 1,000 streams end, bench/many_streams.py)."""
    now_s = time.time()
    writer = RequestStatsWriter(redis, pause_s=60)
    writer.start()
    writer.add(RequestOutcome(ended_at_s=now_s, status=200))
    async with asyncio.timeout(5):
        while (await read_request_stats(redis, now_s=now_s))[0].requests < 1:  # noqa: ASYNC110  # Redis state: no event to wait on
            await asyncio.sleep(0.01)
    for _ in range(29):
        await asyncio.sleep(0.01)
        writer.add(RequestOutcome(ended_at_s=now_s, status=200))
    await writer.stop()
    assert (await read_request_stats(redis, now_s=now_s))[0].requests == 30
    writes = (await redis.info("commandstats"))["cmdstat_expire"]["calls"]  # one a write
    assert writes == 2
