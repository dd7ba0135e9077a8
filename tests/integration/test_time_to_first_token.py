"""A relay measures time to first token once: the Prometheus histogram and the dashboard get
the same figure, from the request's arrival to the first content delta it relays."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from redis.asyncio import Redis

from api.relay.chunk_hub import ChunkHub
from api.relay.detached import DetachedJobs
from api.relay.job_reader import JobReader
from api.relay.job_relay import JobRelay
from api.relay.job_watch import JobWatch
from api.telemetry.request_recorder import RequestTiming
from shared.queue.job_queue import JobQueue
from shared.settings import Settings
from shared.telemetry.first_token import FirstTokenClock
from tests.records import running_attempt
from worker.reply.chunk_publisher import ChunkPublisher

BOUND_S = 20.0
ARRIVED_S_AGO = 2.0
MESSAGE_START = {"type": "message_start", "message": {"usage": {"output_tokens": 1}}}
BLOCK_START = {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}}


def text_delta(text: str) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": text},
    }


async def test_the_metric_and_the_dashboard_get_one_ttft_ending_at_the_first_content_delta(
    redis: Redis, hub: ChunkHub, job_queue: JobQueue
) -> None:
    job_id = "job_" + uuid.uuid4().hex
    await running_attempt(redis, job_id)
    publisher = ChunkPublisher(redis, job_id, attempt=1, ttl_s=600, max_chunks=100)
    timing = RequestTiming(FirstTokenClock(received_at_s=time.monotonic() - ARRIVED_S_AGO))
    observed: list[float] = []  # what the Prometheus histogram is given
    relay = JobRelay(
        redis,
        JobReader(redis, hub, job_id),
        job_queue,
        JobWatch(redis, job_queue, Settings(redis_url="redis://unused")),
        DetachedJobs(redis, job_queue, redis_outage_s=1),
        check_interval_s=0.2,
        redis_outage_s=1,
        on_first_token=observed.append,
        timing=timing,
    )
    await relay.open()
    try:
        for event in (MESSAGE_START, BLOCK_START, text_delta("a"), text_delta("b")):
            await publisher.publish_event(event)
        async with asyncio.timeout(BOUND_S):
            await relay.next_chunk()  # message_start
            await relay.next_chunk()  # content_block_start
            assert (observed, timing.first_token.ttft_s) == ([], None)
            await relay.next_chunk()  # the first token
            await relay.next_chunk()
        relay.finished = True  # the test's job: nothing to cancel when it detaches
    finally:
        await relay.close()

    assert len(observed) == 1 and ARRIVED_S_AGO <= observed[0] < BOUND_S + ARRIVED_S_AGO
    assert timing.outcome(200).ttft_ms == observed[0] * 1000
