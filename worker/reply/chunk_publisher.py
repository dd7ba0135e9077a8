"""Publishes a job's chunks: first to its journal (a capped Redis Stream with a TTL), then live.

While the job runs the journal lives `running_ttl_s` past each chunk (a quiet run must not lose
what it sent: a relay counts it to know whether the job may run again); from its last chunk,
`ttl_s`.

Chunks are numbered from 1. The stream entry id is `<seq>-1`, so the journal is ordered by
seq and a reader can ask for "everything after seq N" with XRANGE.

The journal is capped in entries and in bytes: an answer whose events would pass `max_bytes`
fails (its error chunk still goes out). The first chunk also drops the request from the job's
record: once the client has been sent anything, no retry can need it (shared/queue/job_queue.py);
and it notes this worker's account as the one answering the conversation (`note`,
shared/fleet/affinity.py), long before the client can send its next turn.

One writer per job: each chunk is fenced on the attempt number, atomically in Redis. A
worker wrongly declared dead, whose job went to another attempt (or was cancelled), has its
chunks refused (`AttemptSuperseded`) instead of interleaving them with its successor's.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from shared.broker import redis_keys
from shared.errors import CliFailed, FleetError
from shared.fleet.affinity import AccountNote
from shared.stream.chunk import Chunk

# KEYS: journal, job record[, conversation]. ARGV: seq, payload, max chunks, ttl, channel,
# attempt[, account, its TTL].
# Returns 0 when this attempt no longer owns the job. An entry id already taken means an
# earlier try journaled the chunk and its reply was lost (Redis went away): publish it again.
_PUBLISH = """
local r = redis.call('HMGET', KEYS[2], 'attempt', 'status')
if not r[1] or tonumber(r[1]) ~= tonumber(ARGV[6]) or r[2] == 'cancelled' then return 0 end
if ARGV[1] == '1' then
  redis.call('HDEL', KEYS[2], 'payload')
  if KEYS[3] then redis.call('SET', KEYS[3], ARGV[7], 'EX', ARGV[8]) end
end
local added = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], ARGV[1] .. '-1', 'c', ARGV[2])
if type(added) == 'table' and added.err and not string.find(added.err, 'equal or smaller') then
  return added
end
redis.call('PUBLISH', ARGV[5], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


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
        self._script = redis.register_script(_PUBLISH)
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
        note_keys: list[str] = []
        note_args: list[str | int] = []
        if self._note is not None and chunk.seq == 1:
            note_keys, note_args = [self._note.key], [self._note.account, self._note.ttl_s]
        published = await self._script(
            keys=[self._journal, self._record, *note_keys],
            args=[
                chunk.seq,
                payload,
                self._max_chunks,
                # Never outlived by its job.
                self._ttl_s if chunk.is_terminal else self._running_ttl_s,
                self._channel,
                self._attempt,
                *note_args,
            ],
        )
        if not published:
            raise AttemptSuperseded(f"attempt {self._attempt} of {self._job_id} was superseded")
        self.seq = chunk.seq
        self.ended = chunk.is_terminal
        self._bytes += len(payload)
