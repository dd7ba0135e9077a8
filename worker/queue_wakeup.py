"""Wakes an idle worker when there is something to do, so it need not poll the queue.

Front ends publish on `redis_keys.queue_wake_channel()` after they queue an attempt (its id, which
an idle worker may claim without reading the queue: worker/fleet_worker.py) or cancel one
(shared/queue/job_queue.py); the worker's own jobs wake it when they free a slot. Between wakes a
worker still reads the queue every `idle_poll_s`, which covers a wake lost to a pub/sub
reconnect and attempts whose time comes later. One subscription per worker process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from shared.broker import redis_keys

logger = logging.getLogger(__name__)

_RESUBSCRIBE_S = 1.0
_LISTEN_TIMEOUT_S = 5.0  # a bounded read; an idle subscription just loops
_MAX_ANNOUNCED = 64  # a burst beyond it is found by reading the queue


class QueueWakeup:
    def __init__(self, *, idle_poll_s: float) -> None:
        self.idle_poll_s = idle_poll_s
        self._event = asyncio.Event()
        self._wake_at = float("inf")
        self._announced: list[bytes] = []
        self._listener: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._event.set()

    def announce(self, message: bytes) -> None:
        """A wake-up with what it is about (an attempt id, say), kept for `take_announced`."""
        if len(self._announced) < _MAX_ANNOUNCED:
            self._announced.append(message)
        self.wake()

    def take_announced(self) -> list[bytes]:
        announced, self._announced = self._announced, []
        return announced

    def wake_at(self, epoch_s: float) -> None:
        """Make the next wait end by this time at the latest."""
        self._wake_at = min(self._wake_at, epoch_s)

    async def wait(self) -> None:
        """Until woken, `wake_at`, or `idle_poll_s` at most; a wake that came in meanwhile
        counts."""
        timeout_s = min(self.idle_poll_s, max(0.0, self._wake_at - time.time()))
        self._wake_at = float("inf")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):  # no task per wait, unlike wait_for
                await self._event.wait()
        self._event.clear()

    def start(self, redis: Redis) -> None:
        self._listener = asyncio.create_task(self._listen(redis), name="queue-wakeup")

    async def stop(self) -> None:
        if self._listener is None:
            return
        self._listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._listener
        self._listener = None

    async def _listen(self, redis: Redis) -> None:
        """Survives Redis outages: the idle poll keeps the worker going meanwhile."""
        while True:
            pubsub = redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(redis_keys.queue_wake_channel())
                await self._relay_messages(pubsub)
            except (RedisError, OSError) as exc:
                logger.warning("queue wake-up subscription lost (%s)", type(exc).__name__)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py 5 leaves it untyped
            self.wake()  # something may have been queued while we were not listening
            await asyncio.sleep(_RESUBSCRIBE_S)

    async def _relay_messages(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(timeout=_LISTEN_TIMEOUT_S)
            if message is not None:
                self.announce(message["data"])
