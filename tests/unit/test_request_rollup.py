"""Request rate, TTFT and error rate rolled up in Redis, as every front end reads them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from api.telemetry.request_stats_writer import RequestStatsWriter
from shared.broker import redis_keys
from shared.telemetry.request_stats import (
    TTL_S,
    RequestOutcome,
    bucket_start,
    read_request_stats,
    record_request,
)


async def test_a_window_counts_requests_errors_and_ttft_percentiles(redis: Redis) -> None:
    now_s = time.time()
    for i in range(97):
        await record_request(redis, RequestOutcome(ended_at_s=now_s, status=200, ttft_ms=100 + i))
    for status in (429, 529, 400):
        await record_request(redis, RequestOutcome(ended_at_s=now_s, status=status))

    minute, five_minutes = await read_request_stats(redis, now_s=now_s)

    assert (minute.window_s, five_minutes.window_s) == (60, 300)
    assert (minute.requests, minute.errors, minute.ttft_samples) == (100, 2, 97)
    assert minute.error_rate == pytest.approx(0.02)
    assert minute.requests_per_s == pytest.approx(100 / 60, rel=0.2)
    assert minute.ttft_p50_ms == pytest.approx(148, rel=0.05)
    assert minute.ttft_p99_ms == pytest.approx(196, rel=0.05)
    assert five_minutes.requests == 100


async def test_requests_older_than_a_window_are_left_out_of_it(redis: Redis) -> None:
    now_s = time.time()
    await record_request(redis, RequestOutcome(ended_at_s=now_s - 200, status=500, ttft_ms=50))

    minute, five_minutes = await read_request_stats(redis, now_s=now_s)

    assert (minute.requests, minute.errors, minute.ttft_p50_ms) == (0, 0, None)
    assert (five_minutes.requests, five_minutes.errors, five_minutes.error_rate) == (1, 1, 1.0)


async def test_what_one_front_end_records_another_reads_the_same(
    redis: Redis, redis_clients: Callable[[], Redis]
) -> None:
    now_s = time.time()
    other = redis_clients()
    await record_request(other, RequestOutcome(ended_at_s=now_s, status=200, ttft_ms=480))
    await record_request(redis, RequestOutcome(ended_at_s=now_s, status=200, ttft_ms=480))
    assert await read_request_stats(redis, now_s=now_s) == await read_request_stats(
        other, now_s=now_s
    )
    assert (await read_request_stats(redis, now_s=now_s))[0].requests == 2


async def test_the_rollup_expires_soon_after_the_longest_window(redis: Redis) -> None:
    now_s = time.time()
    await record_request(redis, RequestOutcome(ended_at_s=now_s, status=200, ttft_ms=10))
    ttl_s = await redis.ttl(redis_keys.request_stats(bucket_start(now_s)))
    assert 300 < ttl_s <= TTL_S <= 330


async def test_the_front_ends_writer_sums_the_requests_that_end_together_into_one_write(
    redis: Redis,
) -> None:
    # A thousand streams ending in the same second: their outcomes go in one write, summed
    # per bucket, and the figures are those of one-by-one records.
    now_s = time.time()
    writer = RequestStatsWriter(redis)
    for i in range(97):
        writer.add(RequestOutcome(ended_at_s=now_s, status=200, ttft_ms=100 + i))
    for status in (429, 529, 400):
        writer.add(RequestOutcome(ended_at_s=now_s, status=status))
    await writer.flush()

    minute, _ = await read_request_stats(redis, now_s=now_s)
    assert (minute.requests, minute.errors, minute.ttft_samples) == (100, 2, 97)
    assert minute.ttft_p50_ms == pytest.approx(148, rel=0.05)
    await writer.flush()  # nothing added since: nothing written
    assert (await read_request_stats(redis, now_s=now_s))[0].requests == 100


async def test_the_writer_writes_outcomes_as_they_come_and_the_last_ones_as_it_stops(
    redis: Redis,
) -> None:
    now_s = time.time()
    writer = RequestStatsWriter(redis)
    writer.start()
    writer.add(RequestOutcome(ended_at_s=now_s, status=200, ttft_ms=100))
    async with asyncio.timeout(5):
        while (await read_request_stats(redis, now_s=now_s))[0].requests < 1:  # noqa: ASYNC110  # Redis state: no event to wait on
            await asyncio.sleep(0.01)
    writer.add(RequestOutcome(ended_at_s=now_s, status=529))  # as the front end stops
    await writer.stop()
    minute, _ = await read_request_stats(redis, now_s=now_s)
    assert (minute.requests, minute.errors) == (2, 1)
