"""One Redis pub/sub connection per front end, fanned out to the relays waiting on jobs.

A relay that falls behind loses live messages (its queue is bounded and says it overflowed),
never chunks: the relay notices the gap in the numbering, or the overflow once it runs dry,
and reads the journal. Messages lost while the pub/sub connection is re-established are
found by the relay's quiet check (api/relay/job_watch.py). A Redis restart costs the relays
only the messages published while it was away: once reconnected, the pub/sub connection is
subscribed again to every channel (redis-py's to those it knew, the hub's to those added
while Redis was away).

A channel whose last relay left is unsubscribed by the hub's own loop, before it reads its
next message, together with the others left meanwhile: streams ending together (a thousand
within a second or two) cost one UNSUBSCRIBE, not one each. Until then its messages find no
relay and are dropped; a relay subscribing to it again keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.broker import redis_keys
from shared.broker.outage import OUTAGE_ERRORS

logger = logging.getLogger(__name__)

_QUEUE_SIZE = 4096
_RECONNECT_DELAY_S = 0.5


class LiveQueue(asyncio.Queue[bytes]):
    """One relay's live messages; `overflowed` once one was dropped for want of room;
    `on_arrival`, if set, is called once, when the next message is queued."""

    def __init__(self) -> None:
        super().__init__(maxsize=_QUEUE_SIZE)
        self.overflowed = False
        self.on_arrival: Callable[[], object] | None = None

    def put_nowait(self, item: bytes) -> None:
        super().put_nowait(item)
        if self.on_arrival is not None:
            arrived, self.on_arrival = self.on_arrival, None
            arrived()


class ChunkHub:
    def __init__(self, redis: Redis) -> None:
        self._pubsub = redis.pubsub(ignore_subscribe_messages=True)
        self._queues: dict[str, set[LiveQueue]] = {}
        self._has_channels = asyncio.Event()
        # redis-py's PubSub opens its connection on the first (un)subscribe without a lock:
        # calls made at once each open one, and only the last is read. One at a time, then.
        self._subscribing = asyncio.Lock()
        self._out_of_step = False  # Redis's subscriptions may differ from the hub's channels
        self._left: set[str] = set()  # channels with no relay left, not yet unsubscribed

    @contextlib.asynccontextmanager
    async def subscribe(self, job_id: str) -> AsyncIterator[LiveQueue]:
        """Live raw chunks of one job while the block runs. While Redis is away the channel
        is subscribed once it is back; the relay reads the journal meanwhile."""
        channel = redis_keys.job_channel(job_id)
        queue = LiveQueue()
        readers = self._queues.setdefault(channel, set())
        readers.add(queue)
        self._left.discard(channel)
        try:
            if len(readers) == 1:
                await self._send("SUBSCRIBE", channel)
            self._has_channels.set()
            yield queue
        finally:
            readers.discard(queue)
            if not readers:
                del self._queues[channel]
                self._left.add(channel)  # unsubscribed by `run`, with the others left

    async def _send(self, command: str, *channels: str) -> None:
        # Only on a live connection: a dead one is reconnected by `run` alone (two coroutines
        # connecting one connection at once read it at once, which kills the hub).
        async with self._subscribing:
            connection = self._pubsub.connection
            if connection is None or connection.is_connected:
                with contextlib.suppress(*OUTAGE_ERRORS):
                    if command == "SUBSCRIBE":
                        await self._pubsub.subscribe(*channels)
                    else:
                        await self._pubsub.unsubscribe(*channels)
                    return
            self._out_of_step = True

    async def run(self) -> None:
        """Deliver messages until cancelled; owned by the app's lifespan."""
        while True:
            try:
                await self._unsubscribe_left()
                await self._has_channels.wait()
                message = await self._pubsub.get_message(timeout=1.0)
            except (RedisError, OSError) as exc:
                logger.warning("pub/sub connection lost (%s); reconnecting", type(exc).__name__)
                self._out_of_step = True
                await asyncio.sleep(_RECONNECT_DELAY_S)
                continue
            if self._out_of_step:
                await self._step_in()
            if message is None:
                if not self._queues:
                    self._has_channels.clear()
                continue
            self._deliver(message["channel"].decode(), message["data"])

    async def _unsubscribe_left(self) -> None:
        if self._left:
            left, self._left = self._left, set()
            await self._send("UNSUBSCRIBE", *left)

    async def _step_in(self) -> None:
        """Connected again (redis-py subscribed it to the channels it knew): subscribe the
        channels added while Redis was away, unsubscribe those left meanwhile."""
        self._out_of_step = False
        known = {channel.decode() for channel in self._pubsub.channels}
        if missing := set(self._queues) - known:
            await self._send("SUBSCRIBE", *missing)
        if left := known - set(self._queues):
            await self._send("UNSUBSCRIBE", *left)

    def _deliver(self, channel: str, data: bytes) -> None:
        for queue in self._queues.get(channel, ()):
            try:
                queue.put_nowait(data)
            except asyncio.QueueFull:
                queue.overflowed = True

    async def close(self) -> None:
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py 5 leaves it untyped
