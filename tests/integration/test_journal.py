"""The journal's format (shared/stream/journal.py and journal.lua), pinned: one Redis Stream
entry per chunk, id `<seq>-1`, the chunk's JSON in field `c`. Its readers in Python and its
writer and readers in Lua must agree on it."""

from __future__ import annotations

from redis.asyncio import Redis

from shared.broker import redis_keys
from shared.broker.lua_script import LuaScript
from shared.stream import journal
from shared.stream.chunk import Chunk

# The journal's Lua functions, called on their own.
APPEND = LuaScript.parse(
    "append.lua",
    "-- KEYS: journal\n-- ARGV: seq chunk\n"
    "return journal_append(KEY.journal, ARG.seq, ARG.chunk, 1000) or 'ok'\n",
    uses=[journal.LUA],
)
AFTER = LuaScript.parse(
    "after.lua",
    "-- KEYS: journal\n-- ARGV: seq\nreturn journal_after(KEY.journal, ARG.seq)\n",
    uses=[journal.LUA],
)
LAST = LuaScript.parse(
    "last.lua",
    "-- KEYS: journal\nreturn journal_last(KEY.journal) or 'none'\n",
    uses=[journal.LUA],
)


def chunk(seq: int) -> bytes:
    return Chunk(seq=seq, kind="event", event="ping", data={"type": "ping"}).to_json()


async def append(redis: Redis, seq: int) -> bytes:
    answer: bytes = await APPEND.bind(redis)(
        journal=redis_keys.job_journal("job_1"), seq=seq, chunk=chunk(seq)
    )
    return answer


async def test_each_chunk_is_one_entry_with_id_seq_dash_one_and_its_json_in_field_c(
    redis: Redis,
) -> None:
    for seq in (1, 2, 3):
        assert await append(redis, seq) == b"ok"
    entries = await redis.xrange(redis_keys.job_journal("job_1"))
    assert entries == [(f"{seq}-1".encode(), {b"c": chunk(seq)}) for seq in (1, 2, 3)]


async def test_a_chunk_journaled_again_is_no_error_and_not_kept_twice(redis: Redis) -> None:
    await append(redis, 1)
    assert await append(redis, 1) == b"ok"
    assert await journal.count(redis, "job_1") == 1


async def test_python_and_lua_read_the_chunks_after_a_seq_alike(redis: Redis) -> None:
    for seq in range(1, 6):
        await append(redis, seq)
    after = AFTER.bind(redis)
    for seq in (0, 2, 5):
        wanted = [chunk(n) for n in range(seq + 1, 6)]
        assert await journal.read_after(redis, "job_1", seq) == wanted
        assert await after(journal=redis_keys.job_journal("job_1"), seq=seq) == wanted


async def test_python_and_lua_read_the_newest_chunk_alike(redis: Redis) -> None:
    last = LAST.bind(redis)
    assert await journal.read_last(redis, "job_1") is None
    assert await last(journal=redis_keys.job_journal("job_1")) == b"none"
    await append(redis, 1)
    await append(redis, 2)
    newest = await journal.read_last(redis, "job_1")
    assert newest is not None and newest.seq == 2
    assert await last(journal=redis_keys.job_journal("job_1")) == chunk(2)


async def test_raw_chunks_decodes_a_sync_clients_xrange_reply_too() -> None:
    entries = [(b"1-1", {b"c": chunk(1)}), (b"2-1", {b"c": chunk(2)})]
    assert journal.raw_chunks(entries) == [chunk(1), chunk(2)]
