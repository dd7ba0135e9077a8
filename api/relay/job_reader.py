"""Reads a job's chunks in order, exactly once each: live from pub/sub, gaps from the journal.

A live message carries one chunk or several (shared/stream/live_message.py). One can be lost
(the hub's queue for a slow relay overflowed, pub/sub reconnected): a gap in the numbering
makes the reader read the journal at once, and so does running dry after an overflow; a
message lost otherwise shows when the job goes quiet, and the relay's quiet check
(api/relay/job_watch.py) brings the journal's chunks to `absorb`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from redis.asyncio import Redis

from api.relay.chunk_hub import ChunkHub, LiveQueue
from shared.broker.outage import OUTAGE_ERRORS
from shared.stream import journal, live_message
from shared.stream.chunk import Chunk


class JobReader:
    """`async with JobReader(...) as reader: chunk = await reader.next_chunk(wait_s)`."""

    def __init__(self, redis: Redis, hub: ChunkHub, job_id: str, *, after_seq: int = 0) -> None:
        self._redis = redis
        self._hub = hub
        self.job_id = job_id
        self.last_seq = after_seq
        self._pending: deque[Chunk] = deque()
        self._subscription = hub.subscribe(job_id)
        self._live: LiveQueue | None = None

    async def __aenter__(self) -> JobReader:
        self._live = await self._subscription.__aenter__()
        # Anything published before the subscription took effect is in the journal. Should
        # Redis be away, the relay's quiet check reads it once Redis is back.
        with contextlib.suppress(*OUTAGE_ERRORS):
            await self._catch_up()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._subscription.__aexit__(exc_type, exc, tb)

    @property
    def known_seq(self) -> int:
        """The last chunk read so far, returned or not."""
        return self._pending[-1].seq if self._pending else self.last_seq

    def is_dry(self) -> bool:
        """Whether nothing has arrived that `next_chunk` would return or look at."""
        return not self._pending and (self._live is None or self._live.empty())

    @contextlib.contextmanager
    def interrupting(self, task: asyncio.Future[Any]) -> Iterator[None]:
        """`task` is cancelled if a live message arrives while the block runs (a wait that a
        chunk makes pointless: a quiet check's read)."""
        assert self._live is not None
        if not self._live.empty():
            task.cancel()
        self._live.on_arrival = task.cancel
        try:
            yield
        finally:
            self._live.on_arrival = None

    async def next_chunk(self, wait_s: float) -> Chunk | None:
        """The chunk after the last one returned, or None if none came within `wait_s`
        (with 0: one that has arrived already, if any)."""
        assert self._live is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while not self._pending:
            if self._live.overflowed and self._live.empty():
                self._live.overflowed = False
                await self._catch_up()
                continue
            if not self._live.empty():  # chunks come in bursts: no wait for those queued
                raw = self._live.get_nowait()
            else:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        raw = await self._live.get()
                except TimeoutError:
                    continue
            await self._take_live(raw)
        if not self._pending:
            return None
        chunk = self._pending.popleft()
        self.last_seq = chunk.seq
        return chunk

    async def _take_live(self, message: bytes) -> None:
        """The chunks of a live message that follow `known_seq`; at a gap, the journal's."""
        for chunk in live_message.decode(message):
            if chunk.seq == self.known_seq + 1:
                self._pending.append(chunk)
            elif chunk.seq > self.known_seq + 1:
                await self._catch_up()
                return

    def absorb(self, journaled: list[bytes]) -> None:
        """Chunks read from the journal (raw, in order): those after `known_seq` are kept."""
        for raw in journaled:
            chunk = Chunk.from_json(raw)
            if chunk.seq == self.known_seq + 1:
                self._pending.append(chunk)

    async def _catch_up(self) -> None:
        self.absorb(await journal.read_after(self._redis, self.job_id, self.known_seq))
