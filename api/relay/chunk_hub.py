"""One Redis pub/sub connection per front end, fanned out to the relays waiting on jobs.

A relay that falls behind loses live messages (its queue is bounded and says it overflowed),
never chunks: the relay notices the gap in the numbering, or the overflow once it runs dry,
and reads the journal. Messages lost while the pub/sub connection is re-established are
found by the relay's quiet check (api/relay/job_watch.py). redis-py subscribes the
connection it opens again to every channel the hub holds, so a Redis restart costs the
relays only the messages published while it was away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.broker import redis_keys
from shared.broker.outage import outlasting_outage

logger = logging.getLogger(__name__)

_QUEUE_SIZE = 4096
_RECONNECT_DELAY_S = 0.5


class LiveQueue(asyncio.Queue[bytes]):
    """One relay's live messages; `overflowed` once one was dropped for want of room."""

    def __init__(self) -> None:
        super().__init__(maxsize=_QUEUE_SIZE)
        self.overflowed = False


class ChunkHub:
    def __init__(self, redis: Redis, *, outage_grace_s: float = 0.0) -> None:
        self._outage_grace_s = outage_grace_s  # how long a subscribe waits for Redis
        self._pubsub = redis.pubsub(ignore_subscribe_messages=True)
        self._queues: dict[str, set[LiveQueue]] = {}
        self._has_channels = asyncio.Event()
        # redis-py's PubSub opens its connection on the first (un)subscribe without a lock:
        # calls made at once each open one, and only the last is read. One at a time, then.
        self._subscribing = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def subscribe(self, job_id: str) -> AsyncIterator[LiveQueue]:
        """Live raw chunks of one job while the block runs."""
        channel = redis_keys.job_channel(job_id)
        queue = LiveQueue()
        readers = self._queues.setdefault(channel, set())
        readers.add(queue)
        try:
            if len(readers) == 1:
                async with self._subscribing:
                    await outlasting_outage(
                        lambda: self._pubsub.subscribe(channel), limit_s=self._outage_grace_s
                    )
            self._has_channels.set()
            yield queue
        finally:
            readers.discard(queue)
            if not readers:
                del self._queues[channel]
                with contextlib.suppress(RedisError, OSError):
                    async with self._subscribing:
                        await self._pubsub.unsubscribe(channel)

    async def run(self) -> None:
        """Deliver messages until cancelled; owned by the app's lifespan."""
        while True:
            await self._has_channels.wait()
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (RedisError, OSError) as exc:
                logger.warning("pub/sub connection lost (%s); reconnecting", type(exc).__name__)
                await asyncio.sleep(_RECONNECT_DELAY_S)
                continue
            if message is None:
                if not self._queues:
                    self._has_channels.clear()
                continue
            self._deliver(message["channel"].decode(), message["data"])

    def _deliver(self, channel: str, data: bytes) -> None:
        for queue in self._queues.get(channel, ()):
            try:
                queue.put_nowait(data)
            except asyncio.QueueFull:
                queue.overflowed = True

    async def close(self) -> None:
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py 5 leaves it untyped
