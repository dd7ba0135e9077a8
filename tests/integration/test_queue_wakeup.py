"""Idle workers are woken by the queue instead of polling it (worker/queue_wakeup.py).

The workers here read the queue only once a minute when nothing wakes them, so each request
below that is answered within the client's 30 s proves a wake-up reached the worker.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from redis.asyncio import Redis

from shared.broker import redis_keys
from tests.conftest import StackFactory
from tests.sdk import SdkClients, text_of
from worker.queue_wakeup import QueueWakeup

MODEL = "claude-sonnet-4-5"
ONCE_A_MINUTE = {"CCFLEET_WORKER_POLL_DELAY_S": "60"}


async def test_a_publish_on_the_wake_channel_ends_an_idle_wait(redis: Redis) -> None:
    wakeup = QueueWakeup(idle_poll_s=60)
    wakeup.start(redis)
    try:
        async with asyncio.timeout(10):
            # Poll until the listener subscribed.
            while not (await redis.pubsub_numsub(redis_keys.queue_wake_channel()))[0][1]:  # noqa: ASYNC110  # Redis state, not ours: no event to wait on
                await asyncio.sleep(0.01)
        await redis.publish(redis_keys.queue_wake_channel(), b"queued")
        await asyncio.wait_for(wakeup.wait(), timeout=10)
    finally:
        await wakeup.stop()


def test_a_queued_job_and_a_freed_slot_wake_a_worker_that_polls_once_a_minute(
    make_stack: StackFactory,
    sdk_clients: SdkClients,
) -> None:
    # One slot: the second request waits in the queue until the first one frees the slot.
    stack = make_stack(CCFLEET_WORKER_SLOTS="1", **ONCE_A_MINUTE)
    client = sdk_clients.anthropic_client(stack.url, "k", timeout_s=30)

    def ask(n: int) -> str:
        message = client.messages.create(
            model=MODEL, max_tokens=50, messages=[{"role": "user", "content": f"Request {n}."}]
        )
        return text_of(message)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(ask, [1, 2]))
    assert len(answers) == 2 and all(answers)
    assert len(stack.upstream.requests) == 2
