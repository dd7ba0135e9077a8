"""Reads a job's chunks in order, exactly once each: live from pub/sub, gaps from the journal."""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType

from redis.asyncio import Redis

from api.chunk_hub import ChunkHub
from shared import keys
from shared.jobs import Chunk


class JobReader:
    """`async with JobReader(...) as reader: chunk = await reader.next_chunk(wait_s)`."""

    def __init__(self, redis: Redis, hub: ChunkHub, job_id: str, *, after_seq: int = 0) -> None:
        self._redis = redis
        self._hub = hub
        self.job_id = job_id
        self.last_seq = after_seq
        self._pending: deque[Chunk] = deque()
        self._subscription = hub.subscribe(job_id)
        self._live: asyncio.Queue[bytes] | None = None

    async def __aenter__(self) -> JobReader:
        self._live = await self._subscription.__aenter__()
        # Anything published before the subscription took effect is in the journal.
        await self._catch_up()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._subscription.__aexit__(exc_type, exc, tb)

    async def next_chunk(self, wait_s: float) -> Chunk | None:
        """The chunk after the last one returned, or None if none came within `wait_s`."""
        assert self._live is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while not self._pending:
            remaining = deadline - loop.time()
            if remaining <= 0:
                await self._catch_up()  # a lost live message must not stall the stream
                break
            try:
                raw = await asyncio.wait_for(self._live.get(), remaining)
            except TimeoutError:
                continue
            chunk = Chunk.from_json(raw)
            if chunk.seq == self.last_seq + 1:
                self._pending.append(chunk)
            elif chunk.seq > self.last_seq + 1:
                await self._catch_up()
        if not self._pending:
            return None
        chunk = self._pending.popleft()
        self.last_seq = chunk.seq
        return chunk

    async def _catch_up(self) -> None:
        known = self._pending[-1].seq if self._pending else self.last_seq
        entries = await self._redis.xrange(keys.job_journal(self.job_id), min=f"{known + 1}-0")
        for _entry_id, fields in entries:
            chunk = Chunk.from_json(fields[b"c"])
            if chunk.seq == known + 1:
                self._pending.append(chunk)
                known = chunk.seq
