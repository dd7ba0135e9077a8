"""Publishes a job's chunks: first to its journal (a capped Redis Stream with a TTL), then live.

While the job runs the journal lives `running_ttl_s` past each chunk (a quiet run must not lose
what it sent: a relay counts it to know whether the job may run again); from its last chunk,
`ttl_s`.

Chunks are numbered from 1 (the journal's format: shared/stream/journal.py).

The journal is capped in entries and in bytes: an answer whose events would pass `max_bytes`
fails (its error chunk still goes out). The first chunk also drops the request from the job's
record: once the client has been sent anything, no retry can need it (shared/queue/job_queue.py);
and it notes this worker's account as the one answering the conversation (`note`,
shared/fleet/affinity.py), and this worker if it may keep the conversation resident, long
before the client can send its next turn.

A Redis outage (a restart, a failover) does not stop the answer: a chunk that cannot be
written is kept, in order, and the CLI's next chunks after it; each publish tries the kept
ones again, and the answer's last chunk waits for Redis with backoff. Only an outage longer
than `outage_grace_s` fails the job. A chunk sent again is journaled once (the journal
refuses its number a second time) and its live message, if doubled, is dropped by the relay
(it reads chunks by number): nothing is lost or doubled.

One writer per job: each chunk is fenced on the attempt number, atomically in Redis. A
worker wrongly declared dead, whose job went to another attempt (or was cancelled), has its
chunks refused (`AttemptSuperseded`) instead of interleaving them with its successor's.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from shared.broker import redis_keys
from shared.broker.lua_script import LuaScript
from shared.broker.outage import OUTAGE_ERRORS, outlasting_outage
from shared.errors import CliFailed, FleetError
from shared.fleet.affinity import AccountNote
from shared.stream import journal, live_message
from shared.stream.chunk import Chunk

_PUBLISH = LuaScript.beside(__file__, "chunk_publisher.publish.lua", uses=[journal.LUA])

_GROUP_MAX = 64
"""The most chunks one write carries (a long outage's kept chunks go out in several)."""


class AttemptSuperseded(Exception):
    """This attempt no longer owns its job: its chunks are refused. Never reaches a client
    (the job's current attempt, or its cancellation, speaks for it)."""


class ChunkPublisher:
    def __init__(
        self,
        redis: Redis,
        job_id: str,
        *,
        attempt: int,
        ttl_s: int,
        max_chunks: int,
        running_ttl_s: int | None = None,
        max_bytes: int = 1 << 30,
        note: AccountNote | None = None,
        outage_grace_s: float = 0.0,
    ) -> None:
        self._redis = redis
        self._job_id = job_id
        self._attempt = attempt
        self._journal = redis_keys.job_journal(job_id)
        self._record = redis_keys.job_record(job_id)
        self._channel = redis_keys.job_channel(job_id)
        self._ttl_s = ttl_s
        self._running_ttl_s = max(ttl_s, running_ttl_s or 0)
        self._max_chunks = max_chunks
        self._max_bytes = max_bytes
        self._bytes = 0
        self._note = note
        self._script = _PUBLISH.bind(redis)
        self._outage_grace_s = outage_grace_s
        self._unwritten: deque[tuple[Chunk, bytes]] = deque()  # numbered, with their JSON,
        # not yet journaled (Redis away)
        self._outage_since: float | None = None  # monotonic; when the first write failed
        self.seq = 0  # the last chunk numbered: journaled, or kept to journal
        self.ended = False
        self.failed = False  # it ended with an error

    async def last_published(self) -> Chunk | None:
        """The newest chunk already in the journal (a retried job finds its earlier run's)."""
        return await journal.read_last(self._redis, self._job_id)

    async def publish_event(self, data: dict[str, Any]) -> None:
        await self.publish_events([data])

    async def publish_events(self, events: Sequence[dict[str, Any]]) -> None:
        """Events the CLI gave at once (an answer's closing events): one write, one message."""
        chunks = []
        for seq, data in enumerate(events, self.seq + 1):
            chunks.append(Chunk(seq=seq, kind="event", event=data["type"], data=data))
        await self._publish(chunks)

    async def publish_error(self, error: FleetError) -> None:
        self.failed = True
        chunk = Chunk(
            seq=self.seq + 1,
            kind="error",
            data=error.to_error(),
            retry_after_s=error.retry_after_s,
            should_retry=error.should_retry,
        )
        await self._publish([chunk])

    async def _publish(self, chunks: list[Chunk]) -> None:
        for chunk in chunks:
            self._keep(chunk)
        if chunks and chunks[-1].is_terminal:
            await self._flush_waiting()
        else:
            await self._flush_or_keep()

    def _keep(self, chunk: Chunk) -> None:
        payload = chunk.to_json()
        if chunk.kind == "event" and self._bytes + len(payload) > self._max_bytes:
            raise CliFailed(f"The answer exceeded the journal limit of {self._max_bytes} bytes.")
        self._unwritten.append((chunk, payload))
        self.seq = chunk.seq
        self._bytes += len(payload)

    async def _flush_or_keep(self) -> None:
        """Write the kept chunks; if Redis is away, keep them while the outage is in grace."""
        try:
            await self._flush()
        except OUTAGE_ERRORS:
            now = time.monotonic()
            if self._outage_since is None:
                self._outage_since = now
            if now - self._outage_since >= self._outage_grace_s:
                raise

    async def _flush_waiting(self) -> None:
        """Write the kept chunks, waiting for Redis up to the grace: the answer's end (or
        its error, which an outage may have caused) must reach the client."""
        await outlasting_outage(self._flush, limit_s=self._outage_grace_s)

    async def _flush(self) -> None:
        """The kept chunks, up to `_GROUP_MAX` a write: each write one live message."""
        while self._unwritten:
            group = list(itertools.islice(self._unwritten, _GROUP_MAX))
            await self._write(group)
            for _ in group:
                self._unwritten.popleft()
            self._outage_since = None

    async def _write(self, group: list[tuple[Chunk, bytes]]) -> None:
        first, last = group[0][0], group[-1][0]
        payloads = [payload for _chunk, payload in group]
        note = self._note if first.seq == 1 else None
        published = await self._script(
            journal=self._journal,
            record=self._record,
            conversation=note.key if note else "",
            conversation_worker=note.worker_key if note else "",
            first_seq=first.seq,
            max_chunks=self._max_chunks,
            # From the last chunk on the journal lives `ttl_s`; before, never less than its job.
            ttl_s=self._ttl_s if last.is_terminal else self._running_ttl_s,
            channel=self._channel,
            attempt=self._attempt,
            account=note.account if note else "",
            account_ttl_s=note.ttl_s if note else 0,
            worker=note.worker if note else "",
            worker_ttl_s=max(1, note.worker_ttl_s) if note else 1,
            message=live_message.encode(payloads),
            chunks=payloads,
        )
        if not published:
            self._unwritten.clear()  # refused: none of these is this attempt's to send
            self.seq = first.seq - 1
            raise AttemptSuperseded(f"attempt {self._attempt} of {self._job_id} was superseded")
        self.ended = last.is_terminal
