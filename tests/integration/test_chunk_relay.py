"""Chunks from a worker's ChunkPublisher reach a front end's JobReader in order, exactly once,
whether they come live (pub/sub through the ChunkHub) or from the job's journal."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from api.relay.chunk_hub import ChunkHub
from api.relay.detached import DetachedJobs
from api.relay.job_reader import JobReader
from api.relay.job_relay import JobRelay
from api.relay.job_watch import JobWatch
from shared.broker import redis_keys
from shared.broker.lua_script import LuaScript
from shared.errors import Overloaded
from shared.queue.job_queue import JobQueue
from shared.settings import Settings
from shared.stream import journal, live_message
from shared.stream.chunk import Chunk
from tests.records import running_attempt
from worker.context import WorkerState
from worker.heartbeat import beat
from worker.reply.chunk_publisher import ChunkPublisher

# A reader told to wait this long for a chunk that is already in the journal has missed it;
# the test's own bound (BOUND_S) then fails it.
NEVER_S = 3600.0
BOUND_S = 20.0


def new_job_id() -> str:
    return "job_" + uuid.uuid4().hex


async def make_publisher(
    redis: Redis, job_id: str, *, ttl_s: int = 600, max_chunks: int = 100_000
) -> ChunkPublisher:
    await running_attempt(redis, job_id)
    return ChunkPublisher(redis, job_id, attempt=1, ttl_s=ttl_s, max_chunks=max_chunks)


def text_event(n: int) -> dict[str, Any]:
    delta = {"type": "text_delta", "text": str(n)}
    return {"type": "content_block_delta", "index": 0, "delta": delta}


async def publish_events(publisher: ChunkPublisher, count: int) -> None:
    for _ in range(count):
        await publisher.publish_event(text_event(publisher.seq + 1))


# The journal's own append, without the live message that publishing also sends.
JOURNAL_ONLY = LuaScript.parse(
    "journal_only.lua",
    "-- KEYS: journal\n-- ARGV: seq chunk\n"
    "return journal_append(KEY.journal, ARG.seq, ARG.chunk, 100000)\n",
    uses=[journal.LUA],
)


async def write_to_journal_only(redis: Redis, job_id: str, publisher: ChunkPublisher) -> None:
    """The publisher's next chunk, stored as it stores it, with its live message lost."""
    seq = publisher.seq + 1
    chunk = Chunk(seq=seq, kind="event", event="content_block_delta", data=text_event(seq))
    await JOURNAL_ONLY.bind(redis)(
        journal=redis_keys.job_journal(job_id), seq=seq, chunk=chunk.to_json()
    )
    publisher.seq = seq


async def read_chunks(reader: JobReader, count: int, *, wait_s: float = 0.2) -> list[Chunk]:
    """`count` chunks from the reader; fails if they do not all come within BOUND_S."""
    chunks: list[Chunk] = []
    async with asyncio.timeout(BOUND_S):
        while len(chunks) < count:
            chunk = await reader.next_chunk(wait_s)
            if chunk is not None:
                chunks.append(chunk)
    return chunks


async def next_within_bound(
    reader: JobReader, wait_s: float, *, bound_s: float = BOUND_S
) -> Chunk | None:
    async with asyncio.timeout(bound_s):
        return await reader.next_chunk(wait_s)


@contextlib.asynccontextmanager
async def relay_of(
    redis: Redis,
    hub: ChunkHub,
    job_queue: JobQueue,
    job_id: str,
    *,
    check_interval_s: float,
    watch_settings: Settings | None = None,
) -> AsyncIterator[JobRelay]:
    """A relay of the test's job, opened; closed after it, as finished if the block ended
    well (the test's job: nothing to cancel when it detaches)."""
    watch = JobWatch(redis, job_queue, watch_settings or Settings(redis_url="redis://unused"))
    relay = JobRelay(
        redis,
        JobReader(redis, hub, job_id),
        job_queue,
        watch,
        DetachedJobs(redis, job_queue, redis_outage_s=1),
        check_interval_s=check_interval_s,
        redis_outage_s=1,
    )
    await relay.open()
    try:
        yield relay
        relay.finished = True
    finally:
        await relay.close()


def assert_numbered(chunks: list[Chunk], first: int, last: int) -> None:
    assert [chunk.seq for chunk in chunks] == list(range(first, last + 1))
    for chunk in chunks:
        assert chunk.kind == "event"
        assert chunk.event == "content_block_delta"
        assert chunk.data == text_event(chunk.seq)


def assert_seq(chunk: Chunk | None, seq: int) -> None:
    assert chunk is not None, f"chunk {seq} did not come"
    assert_numbered([chunk], seq, seq)


async def test_a_late_reader_gets_the_earlier_chunks_in_order_then_the_live_ones(
    redis: Redis, hub: ChunkHub
) -> None:
    job_id = new_job_id()
    publisher = await make_publisher(redis, job_id)
    await publish_events(publisher, 50)
    async with JobReader(redis, hub, job_id) as reader:
        await publish_events(publisher, 10)
        chunks = await read_chunks(reader, 60)
        assert_numbered(chunks, 1, 60)
        assert await reader.next_chunk(0.3) is None  # no duplicate follows
        assert reader.last_seq == 60


async def test_a_reader_of_a_finished_job_gets_every_chunk_without_waiting(
    redis: Redis, hub: ChunkHub
) -> None:
    job_id = new_job_id()
    publisher = await make_publisher(redis, job_id)
    await publish_events(publisher, 5)
    await publisher.publish_event({"type": "message_stop"})
    async with JobReader(redis, hub, job_id) as reader:
        # Nothing more will be published: waiting for live chunks would never end.
        chunks = [await next_within_bound(reader, NEVER_S) for _ in range(6)]
    assert [chunk.seq if chunk else None for chunk in chunks] == [1, 2, 3, 4, 5, 6]
    assert chunks[-1] is not None and chunks[-1].is_terminal


async def test_a_reader_joining_while_chunks_stream_gets_each_exactly_once(
    redis: Redis, hub: ChunkHub
) -> None:
    job_id = new_job_id()
    publisher = await make_publisher(redis, job_id)

    fifty_published = asyncio.Event()

    async def stream() -> None:
        for _ in range(400):
            await publish_events(publisher, 1)
            if publisher.seq == 50:
                fifty_published.set()
            await asyncio.sleep(0)

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(stream())
        async with asyncio.timeout(BOUND_S):
            await fifty_published.wait()
        async with JobReader(redis, hub, job_id) as reader:
            chunks = await read_chunks(reader, 400)
            assert await reader.next_chunk(0.3) is None
    assert_numbered(chunks, 1, 400)


async def test_a_lost_live_chunk_is_read_from_the_journal_when_the_next_one_shows_the_gap(
    redis: Redis, hub: ChunkHub
) -> None:
    job_id = new_job_id()
    publisher = await make_publisher(redis, job_id)
    async with JobReader(redis, hub, job_id) as reader:
        await publish_events(publisher, 1)
        assert_seq(await next_within_bound(reader, NEVER_S), 1)
        await write_to_journal_only(redis, job_id, publisher)  # chunk 2
        await publish_events(publisher, 1)  # chunk 3, live
        assert_seq(await next_within_bound(reader, NEVER_S), 2)
        assert_seq(await next_within_bound(reader, NEVER_S), 3)


async def test_a_lost_live_chunk_is_read_from_the_journal_when_the_stream_goes_quiet(
    redis: Redis, hub: ChunkHub, job_queue: JobQueue
) -> None:
    # The relay's quiet check reads the journal with the job's state: the job runs on a
    # live worker, so the relay goes on and delivers what only the journal holds.
    job_id = new_job_id()
    publisher = await make_publisher(redis, job_id)
    await redis.hset(redis_keys.job_record(job_id), "worker", "w-live")  # type: ignore[misc]  # redis-py 5 types it sync-or-async
    live = WorkerState(worker_id="w-live", host="test", account="a", slots=1, cli_version="x")
    await beat(redis, live, ttl_s=60)
    async with relay_of(redis, hub, job_queue, job_id, check_interval_s=0.2) as relay:
        await publish_events(publisher, 1)
        async with asyncio.timeout(BOUND_S):
            assert_seq(await relay.next_chunk(), 1)
            await write_to_journal_only(redis, job_id, publisher)  # chunk 2, nothing live after it
            assert_seq(await relay.next_chunk(), 2)


async def test_a_chunk_that_comes_while_its_relays_quiet_check_waits_goes_out_at_once(
    redis: Redis, hub: ChunkHub, job_queue: JobQueue
) -> None:
    # A chunk a second and a check a second after the last chunk (the bench's streams, and
    # any answer pausing about check_s): checks start just as chunks come. The check waits
    # for other relays' checks (here: all but for ever); the chunk must not wait with it.
    job_id = new_job_id()
    publisher = await make_publisher(redis, job_id)
    watch_settings = Settings(redis_url="redis://unused", journal_check_s=3600)
    async with relay_of(
        redis, hub, job_queue, job_id, check_interval_s=0.1, watch_settings=watch_settings
    ) as relay:
        await publish_events(publisher, 1)
        async with asyncio.timeout(BOUND_S):
            assert_seq(await relay.next_chunk(), 1)
            waiting = asyncio.create_task(relay.next_chunk())
            await asyncio.sleep(0.5)  # past check_interval_s: its check is waiting
            await publish_events(publisher, 1)
            assert_seq(await waiting, 2)


async def test_a_reader_that_falls_far_behind_still_gets_every_chunk_exactly_once(
    redis: Redis, hub: ChunkHub
) -> None:
    job_id = new_job_id()
    publisher = await make_publisher(redis, job_id)
    async with JobReader(redis, hub, job_id) as reader, hub.subscribe("marker") as marker:
        await publish_events(publisher, 6000)  # more than the hub queues for one reader
        # The hub reads one connection in order: once the marker is delivered, every
        # chunk before it has been queued for the reader or dropped.
        await redis.publish(redis_keys.job_channel("marker"), b"marker")
        async with asyncio.timeout(BOUND_S):
            assert await marker.get() == b"marker"
        chunks = await read_chunks(reader, 6000)
        assert await reader.next_chunk(0.3) is None
    assert_numbered(chunks, 1, 6000)


async def test_a_reader_resumes_after_the_seq_it_is_given(redis: Redis, hub: ChunkHub) -> None:
    job_id = new_job_id()
    publisher = await make_publisher(redis, job_id)
    await publish_events(publisher, 10)
    async with JobReader(redis, hub, job_id, after_seq=4) as reader:
        await publish_events(publisher, 2)
        assert_numbered(await read_chunks(reader, 8), 5, 12)
        assert await reader.next_chunk(0.3) is None


async def test_a_reader_resuming_at_the_last_seq_waits_for_new_chunks(
    redis: Redis, hub: ChunkHub
) -> None:
    job_id = new_job_id()
    publisher = await make_publisher(redis, job_id)
    await publish_events(publisher, 3)
    async with JobReader(redis, hub, job_id, after_seq=3) as reader:
        assert await reader.next_chunk(0.3) is None
        await publish_events(publisher, 1)
        assert_numbered(await read_chunks(reader, 1), 4, 4)


async def test_events_published_together_are_journaled_each_and_go_live_in_one_message(
    redis: Redis, hub: ChunkHub
) -> None:
    job_id = new_job_id()
    publisher = await make_publisher(redis, job_id)
    await publish_events(publisher, 1)
    async with (
        JobReader(redis, hub, job_id) as reader,
        redis.pubsub(ignore_subscribe_messages=True) as pubsub,
    ):
        await pubsub.subscribe(redis_keys.job_channel(job_id))
        await publisher.publish_events([text_event(n) for n in (2, 3, 4)])
        async with asyncio.timeout(BOUND_S):
            while (message := await pubsub.get_message(timeout=1.0)) is None:
                pass
        assert await pubsub.get_message(timeout=0.3) is None, "one message for the three"
        assert_numbered(await read_chunks(reader, 4), 1, 4)
        assert await reader.next_chunk(0.3) is None
    assert_numbered(live_message.decode(message["data"]), 2, 4)
    journaled = [Chunk.from_json(raw) for raw in await journal.read_after(redis, job_id)]
    assert_numbered(journaled, 1, 4)


async def test_chunks_are_numbered_from_one_and_the_newest_is_known(redis: Redis) -> None:
    job_id = new_job_id()
    publisher = await make_publisher(redis, job_id)
    assert await publisher.last_published() is None
    await publish_events(publisher, 3)
    journaled = [Chunk.from_json(raw) for raw in await journal.read_after(redis, job_id)]
    assert [chunk.seq for chunk in journaled] == [1, 2, 3]
    assert_seq(await publisher.last_published(), 3)
    assert not publisher.ended


async def test_the_journal_gets_its_ttl_with_the_first_chunk(redis: Redis) -> None:
    job_id = new_job_id()
    publisher = await make_publisher(redis, job_id, ttl_s=120)
    await publish_events(publisher, 1)
    assert 0 < await redis.ttl(redis_keys.job_journal(job_id)) <= 120


async def test_the_last_chunk_renews_the_journal_ttl(redis: Redis) -> None:
    job_id = new_job_id()
    journal_key = redis_keys.job_journal(job_id)
    publisher = await make_publisher(redis, job_id, ttl_s=120)
    await publish_events(publisher, 5)
    await redis.expire(journal_key, 10)  # as if the answer had taken most of the TTL
    await publisher.publish_event({"type": "message_stop"})
    assert publisher.ended
    assert 10 < await redis.ttl(journal_key) <= 120


async def test_an_error_chunk_ends_the_job_and_renews_the_journal_ttl(redis: Redis) -> None:
    job_id = new_job_id()
    journal_key = redis_keys.job_journal(job_id)
    publisher = await make_publisher(redis, job_id, ttl_s=120)
    await publish_events(publisher, 2)
    await redis.expire(journal_key, 10)
    await publisher.publish_error(Overloaded("Overloaded", retry_after_s=3))
    assert publisher.ended
    assert 10 < await redis.ttl(journal_key) <= 120
    last = await publisher.last_published()
    assert last is not None
    assert (last.seq, last.kind, last.data, last.retry_after_s) == (
        3,
        "error",
        {"type": "overloaded_error", "message": "Overloaded"},
        3,
    )


async def test_the_journal_is_capped(redis: Redis) -> None:
    job_id = new_job_id()
    publisher = await make_publisher(redis, job_id, max_chunks=100)
    await publish_events(publisher, 1000)
    # Trimming is approximate: whole stream nodes go, so up to one node more may stay.
    node_entries = int(
        (await redis.config_get("stream-node-max-entries"))["stream-node-max-entries"]
    )
    assert 100 <= await journal.count(redis, job_id) <= 100 + node_entries
    assert_seq(await publisher.last_published(), 1000)


async def test_two_readers_of_one_job_on_one_front_end_both_get_every_chunk(
    redis: Redis, hub: ChunkHub
) -> None:
    job_id = new_job_id()
    publisher = await make_publisher(redis, job_id)
    async with JobReader(redis, hub, job_id) as first:
        async with JobReader(redis, hub, job_id) as second:
            await publish_events(publisher, 1)
            assert_seq(await next_within_bound(second, NEVER_S), 1)
            assert_seq(await next_within_bound(first, NEVER_S, bound_s=5), 1)
        await publish_events(publisher, 1)
        assert_seq(await next_within_bound(first, NEVER_S, bound_s=5), 2)


async def test_relays_leaving_together_are_unsubscribed_in_one_command(
    redis: Redis, hub: ChunkHub
) -> None:
    """A thousand streams ending within a second or two: one UNSUBSCRIBE for those that left
    since the hub's last message, not one each."""
    job_ids = [new_job_id() for _ in range(20)]
    async with contextlib.AsyncExitStack() as readers:
        for job_id in job_ids:
            await readers.enter_async_context(JobReader(redis, hub, job_id))
    channels = [redis_keys.job_channel(job_id) for job_id in job_ids]
    async with asyncio.timeout(BOUND_S):
        while any(count for _, count in await redis.pubsub_numsub(*channels)):  # noqa: ASYNC110  # Redis state: no event to wait on
            await asyncio.sleep(0.05)
    stats = await redis.info("commandstats")
    assert stats["cmdstat_unsubscribe"]["calls"] <= 2


async def test_a_job_read_again_as_its_last_reader_leaves_still_gets_live_chunks(
    redis: Redis, hub: ChunkHub
) -> None:
    job_id = new_job_id()
    publisher = await make_publisher(redis, job_id)
    async with JobReader(redis, hub, job_id):
        pass
    async with JobReader(redis, hub, job_id) as again:
        await asyncio.sleep(1.5)  # past the hub's next look at the channels left
        await publish_events(publisher, 1)
        assert_seq(await next_within_bound(again, NEVER_S, bound_s=5), 1)


async def test_relays_subscribing_at_once_on_a_new_hub_all_get_live_chunks(
    redis: Redis, hub: ChunkHub
) -> None:
    # Many requests arriving together at a front end that has no subscription yet: each
    # relay's channel must be on the one connection the hub reads, or its chunks come only
    # from the journal, a journal check (1 s) late.
    async with contextlib.AsyncExitStack() as stack:
        queues = await asyncio.gather(
            *(stack.enter_async_context(hub.subscribe(f"job_{n}")) for n in range(20))
        )
        for n in range(20):
            await redis.publish(redis_keys.job_channel(f"job_{n}"), f"chunk {n}".encode())
        async with asyncio.timeout(5):
            received = [await queue.get() for queue in queues]
    assert received == [f"chunk {n}".encode() for n in range(20)]


async def test_quiet_checks_made_at_once_share_a_pipeline_and_each_gets_its_own_job(
    redis: Redis, job_queue: JobQueue
) -> None:
    # A thousand streams' relays check their quiet jobs in the same second: the checks go
    # together in one pipeline, each answered for its own job.
    live = WorkerState(worker_id="w-live", host="test", account="a", slots=4, cli_version="x")
    await beat(redis, live, ttl_s=60)
    running: list[str] = []
    for _ in range(2):  # on a live worker, a chunk only in the journal
        running.append(job_id := new_job_id())
        publisher = await make_publisher(redis, job_id)
        await redis.hset(redis_keys.job_record(job_id), "worker", "w-live")  # type: ignore[misc]  # redis-py 5 types it sync-or-async
        await write_to_journal_only(redis, job_id, publisher)
    ended = new_job_id()  # its record gone, its last chunks journaled
    await write_to_journal_only(redis, ended, await make_publisher(redis, ended))
    await redis.delete(redis_keys.job_record(ended))
    lost = new_job_id()  # neither record nor chunks: Redis lost it
    watch = JobWatch(redis, job_queue, Settings(redis_url="redis://unused"))
    await watch.check(running[0], after_seq=1)  # the script is loaded from here on
    await redis.config_resetstat()

    first, second, finished, gone = await asyncio.gather(
        watch.check(running[0], after_seq=0),
        watch.check(running[1], after_seq=0),
        watch.check(ended, after_seq=0),
        watch.check(lost, after_seq=0),
        return_exceptions=True,
    )
    for check in (first, second):
        assert not isinstance(check, BaseException)
        assert check.lives
        assert [Chunk.from_json(raw).seq for raw in check.journal] == [1]
    assert not isinstance(finished, BaseException)
    assert not finished.lives
    assert [Chunk.from_json(raw).seq for raw in finished.journal] == [1]
    assert isinstance(gone, Overloaded)
    stats = await redis.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 4
    # Each round trip is a read for Redis: the four checks' pipeline and the two INFOs.
    reads = (await redis.info("stats"))["total_reads_processed"]
    assert reads <= 3, "the checks were not one pipeline"


async def test_runs_of_a_script_in_one_pipeline_load_it_on_a_server_that_lacks_it(
    redis: Redis,
) -> None:
    echo = LuaScript.parse("echo.lua", "-- KEYS: key\n-- ARGV: value\nreturn tonumber(ARG.value)\n")
    await redis.script_flush()
    bound = echo.bind(redis)
    calls: list[dict[str, Any]] = [{"key": f"k{n}", "value": n} for n in range(3)]
    assert await bound.many(calls) == [0, 1, 2]
    await redis.script_flush()  # as a Redis restarted without its scripts
    assert await bound.many(calls) == [0, 1, 2]
    assert await bound.many(calls[:1]) == [0]


async def test_waiting_jobs_checked_at_once_share_one_read_of_the_fleet(
    redis: Redis, job_queue: JobQueue
) -> None:
    # A thousand requests arriving together wait in the queue, and each relay's check asks
    # whether the fleet can serve its job: one read of the fleet answers those asked together.
    live = WorkerState(worker_id="w-live", host="test", account="a", slots=4, cli_version="x")
    await beat(redis, live, ttl_s=60)
    jobs = [new_job_id() for _ in range(20)]
    now_ms = int(time.time() * 1000)
    for job_id in jobs:
        await redis.hset(  # type: ignore[misc]  # redis-py 5 types it sync-or-async
            redis_keys.job_record(job_id),
            mapping={"status": "waiting", "lane": "interactive", "enqueued_at_ms": now_ms},
        )
    watch = JobWatch(redis, job_queue, Settings(redis_url="redis://unused"))
    await redis.config_resetstat()

    checks = await asyncio.gather(*(watch.check(job_id, after_seq=0) for job_id in jobs))

    assert all(check.lives and not check.journal for check in checks)
    fleet_reads = (await redis.info("commandstats"))["cmdstat_zcard"]["calls"] // 2  # a lane each
    assert fleet_reads <= 3, f"{fleet_reads} reads of the fleet for {len(jobs)} checks"


async def test_a_quiet_check_whose_chunk_comes_while_it_waits_for_others_reads_nothing(
    redis: Redis, job_queue: JobQueue
) -> None:
    # A chunk a second and a check a second after the last chunk: most checks are sent just
    # as the next chunk arrives. One whose chunk came meanwhile is answered "lives" unread.
    watch = JobWatch(redis, job_queue, Settings(redis_url="redis://unused"))
    lost = new_job_id()  # no record, no chunks: read, it is a lost job
    skipped = await watch.check(lost, after_seq=0, still_quiet=lambda: False)
    assert skipped.lives and not skipped.journal
    with pytest.raises(Overloaded):
        await watch.check(lost, after_seq=0)
