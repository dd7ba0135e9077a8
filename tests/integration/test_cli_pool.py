"""The ready-CLI pool (worker/cli/pool.py) with real processes: the fake CLI, which waits on
stdin as a ready `claude -p --input-format stream-json` does."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from shared.wire.messages import MessagesRequest
from tests.fakes import fake_cli
from worker.cli.command import SpawnShape, spawn_shape
from worker.cli.config import CliConfig
from worker.cli.pool import CliPool

BOUND_S = 20.0  # generous limit for what takes well under a second when it works
SHAPE = SpawnShape(model="claude-sonnet-4-6", max_tokens=1000, effort=None, bare=False)
OTHER = SpawnShape(model="claude-haiku-4-5", max_tokens=1000, effort=None, bare=False)


def gone(pid: int) -> bool:
    """Exited and reaped (a zombie still answers kill 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def exists(path: str) -> bool:
    return os.path.exists(path)


async def until(predicate: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(BOUND_S):
        while not predicate():  # noqa: ASYNC110  # process state, no event to wait on
            await asyncio.sleep(0.02)
    assert predicate(), what


@pytest.fixture
def config(tmp_path: Path) -> CliConfig:
    wrapper = tmp_path / "claude"
    wrapper.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{fake_cli.__file__}' \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return CliConfig(str(wrapper), env, str(tmp_path), timeout_s=BOUND_S, kill_grace_s=0.3)


@pytest.fixture
async def running_pool(config: CliConfig) -> AsyncIterator[Callable[..., CliPool]]:
    """`running_pool(max_ready=1, idle_s=600)`: a pool whose `run()` is owned here."""
    started: list[tuple[CliPool, asyncio.Task[None]]] = []

    def start(max_ready: int = 1, idle_s: float = 600.0) -> CliPool:
        pool = CliPool(config, max_ready=max_ready, idle_s=idle_s, demand_window_s=600)
        started.append((pool, asyncio.create_task(pool.run(), name="test-pool")))
        return pool

    yield start
    for pool, task in started:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pool.close()


async def test_a_ready_cli_goes_to_a_request_of_its_shape_and_the_pool_refills(
    running_pool: Callable[..., CliPool],
) -> None:
    pool = running_pool()
    assert pool.take(SHAPE) is None, "nothing is ready before any demand"
    await until(lambda: len(pool.ready_pids()) == 1, "a ready CLI for the shape asked for")
    first = pool.ready_pids()[0]
    assert pool.take(OTHER) is None, "another shape starts cold"
    warm = pool.take(SHAPE)
    assert warm is not None and warm.process.pid == first and warm.process.returncode is None
    assert exists(warm.workspace.cwd), "it comes with its own workspace"
    await until(lambda: len(pool.ready_pids()) == 1 and first not in pool.ready_pids(), "refill")
    assert (pool.stats.hits, pool.stats.misses) == (1, 2)
    await warm.discard()
    assert gone(first) and not exists(warm.workspace.base)


async def test_a_ready_cli_that_dies_while_waiting_is_replaced(
    running_pool: Callable[..., CliPool],
) -> None:
    pool = running_pool()
    pool.take(SHAPE)
    await until(lambda: len(pool.ready_pids()) == 1, "a ready CLI")
    dead = pool.ready_pids()[0]
    os.kill(dead, signal.SIGKILL)
    await until(lambda: pool.ready_pids() not in ([], [dead]), "a replacement")
    assert pool.stats.died == 1 and gone(dead)


async def test_an_idle_ready_cli_is_recycled(running_pool: Callable[..., CliPool]) -> None:
    pool = running_pool(idle_s=0.3)
    pool.take(SHAPE)
    await until(lambda: len(pool.ready_pids()) == 1, "a ready CLI")
    idle = pool.ready_pids()[0]
    await until(lambda: pool.stats.recycled >= 1 and idle not in pool.ready_pids(), "recycling")
    assert gone(idle)


async def test_closing_the_pool_leaves_no_cli_or_workspace_behind(
    running_pool: Callable[..., CliPool], config: CliConfig
) -> None:
    pool = running_pool(max_ready=2)
    pool.take(SHAPE)
    pool.take(OTHER)
    await until(lambda: len(pool.ready_pids()) == 2, "two ready CLIs")
    pids = pool.ready_pids()
    await pool.close()
    assert all(gone(pid) for pid in pids)
    assert not [n for n in os.listdir(config.work_root) if n.startswith("ccfleet-work-")]


def test_the_pool_keeps_the_most_asked_for_shapes_ready_within_its_size(config: CliConfig) -> None:
    pool = CliPool(config, max_ready=3, idle_s=600, demand_window_s=600)
    shapes = [SpawnShape(f"m{i}", 1000, None, False) for i in range(4)]
    for shape, count in zip(shapes, [5, 3, 1, 1], strict=True):
        for _ in range(count):
            pool.take(shape)
    wanted = pool.wanted()
    assert sum(wanted.values()) == 3
    assert wanted[shapes[0]] >= 1 and wanted[shapes[1]] >= 1


def test_a_request_shape_ignores_system_prompt_history_and_thinking() -> None:
    def req(**fields: object) -> MessagesRequest:
        body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
        return MessagesRequest.model_validate(body | fields)

    plain = spawn_shape(req(), bare=False)
    assert spawn_shape(req(system="other", thinking={"type": "disabled"}), bare=False) == plain
    assert spawn_shape(req(max_tokens=11), bare=False) != plain
    assert spawn_shape(req(), bare=True) != plain
