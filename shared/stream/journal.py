"""The journal: every chunk of a job, kept in a Redis Stream so that a late reader (a resumed
stream) or one that lost a live message catches up.

Its format, known here and in journal.lua beside this module and nowhere else: one stream
entry per chunk, with the id `<seq>-1` and the chunk's JSON in the field `c`. Ids ordered by
seq let a reader ask for "everything after chunk N" as the range from `<N+1>-0`, and a chunk
written twice (a retried publish) is refused by its id instead of journaled twice.

Chunks are written only in Lua, in the scripts that fence them on the job's attempt
(worker/reply/chunk_publisher.publish.lua), through journal.lua's `journal_append`; scripts
that read the journal in the same step as other keys use `journal_after` and `journal_last`.
The stream's key is `redis_keys.job_journal`; how long it lives and how many chunks it keeps
are the publisher's to say.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from redis.asyncio import Redis

from shared.broker import redis_keys
from shared.broker.lua_script import LuaLibrary
from shared.stream.chunk import Chunk

LUA = LuaLibrary.beside(__file__, "journal.lua")
"""`journal_append`, `journal_after` and `journal_last`, for scripts that use the journal."""

_FIELD = b"c"


def raw_chunks(entries: Iterable[tuple[bytes, Mapping[bytes, bytes]]]) -> list[bytes]:
    """The chunks (their JSON) of the journal's entries, as XRANGE returns them."""
    return [fields[_FIELD] for _entry_id, fields in entries]


async def read_after(redis: Redis, job_id: str, seq: int = 0) -> list[bytes]:
    """The chunks after chunk `seq` (their JSON), oldest first."""
    entries = await redis.xrange(redis_keys.job_journal(job_id), min=f"{seq + 1}-0")
    return raw_chunks(entries)


async def read_last(redis: Redis, job_id: str) -> Chunk | None:
    """The newest chunk, or None if there is none."""
    entries = await redis.xrevrange(redis_keys.job_journal(job_id), count=1)
    return Chunk.from_json(raw_chunks(entries)[0]) if entries else None


async def count(redis: Redis, job_id: str) -> int:
    """How many chunks the journal holds (none: the job's client has been sent nothing)."""
    return int(await redis.xlen(redis_keys.job_journal(job_id)))
