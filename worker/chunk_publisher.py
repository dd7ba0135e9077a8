"""Publishes a job's chunks: first to its journal (a capped Redis Stream with a TTL), then live.

While the job runs the journal lives `running_ttl_s` past each chunk (a quiet run must not lose
what it sent: a relay counts it to know whether the job may run again); from its last chunk,
`ttl_s`.

Chunks are numbered from 1. The stream entry id is `<seq>-1`, so the journal is ordered by
seq and a reader can ask for "everything after seq N" with XRANGE.

The journal is capped in entries and in bytes: an answer whose events would pass `max_bytes`
fails (its error chunk still goes out). The first chunk also drops the request from the job's
record: once the client has been sent anything, no retry can need it (shared/job_queue.py).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared import keys
from shared.errors import CliFailed, FleetError
from shared.jobs import Chunk


class ChunkPublisher:
    def __init__(
        self,
        redis: Redis,
        job_id: str,
        *,
        ttl_s: int,
        max_chunks: int,
        running_ttl_s: int | None = None,
        max_bytes: int = 1 << 30,
    ) -> None:
        self._redis = redis
        self._job_id = job_id
        self._journal = keys.job_journal(job_id)
        self._channel = keys.job_channel(job_id)
        self._ttl_s = ttl_s
        self._running_ttl_s = max(ttl_s, running_ttl_s or 0)
        self._max_chunks = max_chunks
        self._max_bytes = max_bytes
        self._bytes = 0
        self.seq = 0
        self.ended = False
        self.failed = False  # it ended with an error

    async def last_published(self) -> Chunk | None:
        """The newest chunk already in the journal (a retried job finds its earlier run's)."""
        entries = await self._redis.xrevrange(self._journal, count=1)
        if not entries:
            return None
        _entry_id, fields = entries[0]
        return Chunk.from_json(fields[b"c"])

    async def publish_event(self, data: dict[str, Any]) -> None:
        await self._publish(Chunk(seq=self.seq + 1, kind="event", event=data["type"], data=data))

    async def publish_error(self, error: FleetError) -> None:
        self.failed = True
        chunk = Chunk(
            seq=self.seq + 1,
            kind="error",
            data=error.to_error(),
            retry_after_s=error.retry_after_s,
            should_retry=error.should_retry,
        )
        await self._publish(chunk)

    async def _publish(self, chunk: Chunk) -> None:
        payload = chunk.to_json()
        if chunk.kind == "event" and self._bytes + len(payload) > self._max_bytes:
            raise CliFailed(f"The answer exceeded the journal limit of {self._max_bytes} bytes.")
        async with self._redis.pipeline(transaction=True) as pipe:
            if chunk.seq == 1:
                pipe.hdel(keys.job_record(self._job_id), "payload")
            pipe.xadd(
                self._journal,
                {"c": payload},
                id=f"{chunk.seq}-1",
                maxlen=self._max_chunks,
                approximate=True,
            )
            pipe.publish(self._channel, payload)
            # Same round trip; never outlived by its job.
            pipe.expire(self._journal, self._ttl_s if chunk.is_terminal else self._running_ttl_s)
            try:
                await pipe.execute()
            except ResponseError as exc:
                # Journaled by an earlier try whose reply was lost (Redis went away): the
                # id is taken. Readers catch up from the journal; publish it live again.
                if "equal or smaller" not in str(exc):
                    raise
                await self._redis.publish(self._channel, payload)
        self.seq = chunk.seq
        self.ended = chunk.is_terminal
        self._bytes += len(payload)
