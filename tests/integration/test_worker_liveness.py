"""The liveness rule (shared/fleet/liveness.py) against a real Redis, with the worker's own
heartbeat and life line (worker/heartbeat.py, worker/life_line.py) run as tasks of the test.

A task's cancellation closes its life line's connection as a dead process's kernel would; the
heartbeat it wrote before stays, as a SIGKILLed worker's does until its time to live ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ccfleet.embedded_redis import EmbeddedRedis
from shared.broker import redis_keys
from shared.fleet.liveness import LIFE_RUN_ID_FIELD, live_worker_ids, worker_alive
from worker.context import WorkerState
from worker.heartbeat import beat
from worker.life_line import LifeLine

TTL_S = 60.0  # long: what these tests show must not wait for a heartbeat to expire
HEARTBEAT = redis_keys.worker_heartbeat("w-1")


def worker_state(worker_id: str = "w-1") -> WorkerState:
    return WorkerState(worker_id=worker_id, host="test", account="a", slots=1, cli_version="x")


@contextlib.asynccontextmanager
async def life_line(redis: Redis, state: WorkerState) -> AsyncIterator[asyncio.Task[None]]:
    """The worker's life line, held by a task of the test until the block ends (or the test
    cancels it), once the line is held (its heartbeat, written then, names it)."""
    line = LifeLine(redis, state, heartbeat_ttl_s=TTL_S)
    task = asyncio.create_task(line.hold_forever(), name="test-life-line")
    try:
        await line_named(redis, state.worker_id)
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def line_named(redis: Redis, worker_id: str, *, but_not: str = "") -> str:
    """Once the worker's heartbeat names a server its life line is held on (other than
    `but_not`): that server's run_id."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        named: bytes | None = await redis.hget(  # type: ignore[misc]  # redis-py 5 types it sync-or-async
            redis_keys.worker_heartbeat(worker_id), LIFE_RUN_ID_FIELD
        )
        if named and named.decode() != but_not:
            return named.decode()
        assert asyncio.get_running_loop().time() < deadline, "no heartbeat names a life line"
        await asyncio.sleep(0.05)


async def run_id(redis: Redis) -> str:
    server: dict[str, str] = await redis.info("server")
    return server["run_id"]


async def test_a_worker_lives_while_it_beats_and_holds_its_life_line(redis: Redis) -> None:
    state = worker_state()
    async with life_line(redis, state):
        assert await line_named(redis, "w-1") == await run_id(redis)
        assert await worker_alive(redis, "w-1")
        assert await live_worker_ids(redis, heartbeat_ttl_s=TTL_S) == ["w-1"]


async def test_a_worker_whose_life_line_closed_is_dead_while_its_heartbeat_lives(
    redis: Redis,
) -> None:
    state, other = worker_state("w-1"), worker_state("w-2")
    async with life_line(redis, state) as line, life_line(redis, other):
        line.cancel()  # the connection closes, as when the process dies
        with contextlib.suppress(asyncio.CancelledError):
            await line
        assert await redis.exists(HEARTBEAT), "its heartbeat has not expired"
        assert not await worker_alive(redis, "w-1")
        assert await worker_alive(redis, "w-2")
        assert await live_worker_ids(redis, heartbeat_ttl_s=TTL_S) == ["w-2"]


async def test_a_life_line_cut_while_redis_stays_up_is_held_again(redis: Redis) -> None:
    state = worker_state()
    async with life_line(redis, state):
        (line,) = await redis.client_list(_type="pubsub")
        assert await redis.client_kill_filter(_id=line["id"]) == 1
        deadline = asyncio.get_running_loop().time() + 10
        while [c["id"] for c in await redis.client_list(_type="pubsub")] in ([], [line["id"]]):
            assert asyncio.get_running_loop().time() < deadline, "the line was not held again"
            await asyncio.sleep(0.05)
        assert await line_named(redis, "w-1") == await run_id(redis)
        assert await worker_alive(redis, "w-1")


async def test_a_worker_does_not_look_dead_when_a_redis_restart_cut_its_life_line(
    tmp_path: Path,
) -> None:
    with EmbeddedRedis(tmp_path / "redis", persist=True) as server:
        worker_redis = Redis.from_url(server.url)
        state = worker_state()
        try:
            async with life_line(worker_redis, state):
                held_on = state.life_run_id
                server.stop()  # the heartbeat naming the line is kept in the append-only file
                server.start()
                async with Redis.from_url(server.url) as redis:
                    assert await run_id(redis) != held_on
                    assert await worker_alive(redis, "w-1"), "a line counts only where held"
                    assert await line_named(redis, "w-1", but_not=held_on) == await run_id(redis)
                    assert await worker_alive(redis, "w-1")
            async with Redis.from_url(server.url) as redis:
                assert not await worker_alive(redis, "w-1"), "held again, the line counts again"
        finally:
            await worker_redis.aclose()


@pytest.mark.parametrize("naming", ["empty", "missing"])
async def test_a_worker_whose_heartbeat_names_no_life_line_lives_until_the_heartbeat_expires(
    redis: Redis, naming: str
) -> None:
    """A worker whose line is not held yet (or not any more), or of a release without one."""
    await beat(redis, worker_state(), ttl_s=0.5)
    if naming == "missing":
        await redis.hdel(HEARTBEAT, LIFE_RUN_ID_FIELD)  # type: ignore[misc]  # redis-py 5 types it sync-or-async
    assert await worker_alive(redis, "w-1")
    deadline = asyncio.get_running_loop().time() + 10
    while await redis.exists(HEARTBEAT):
        assert asyncio.get_running_loop().time() < deadline, "the heartbeat never expired"
        await asyncio.sleep(0.05)
    assert not await worker_alive(redis, "w-1")
