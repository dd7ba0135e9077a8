"""Calls made while a batch is in flight share the next batch; alone, a call is a batch of one."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from shared.broker.coalesced_calls import CoalescedCalls


class Doubler:
    """A batch runner that doubles each item, counting its batches; while `held`, each batch
    waits for a `release`."""

    def __init__(self, *, held: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.held = held
        self._releases = asyncio.Semaphore(0)
        self.fail_with: Exception | None = None

    def release(self) -> None:
        self._releases.release()

    async def run(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        if self.held:
            await self._releases.acquire()
        if self.fail_with is not None:
            raise self.fail_with
        return [2 * item for item in items]


async def one_in_flight_then(
    calls: CoalescedCalls[int, int], *items: int
) -> tuple[asyncio.Task[int], list[asyncio.Task[int]]]:
    """A call of 0 in flight (held, if its runner holds batches), then calls of `items`
    waiting for their turn."""
    first = asyncio.create_task(calls(0))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(calls(item)) for item in items]
    await asyncio.sleep(0)
    return first, waiting


async def test_a_call_alone_runs_at_once_in_a_batch_of_one() -> None:
    doubler = Doubler()
    calls = CoalescedCalls(doubler.run)
    assert await calls(3) == 6
    assert await calls(4) == 8
    assert doubler.batches == [[3], [4]]


async def test_calls_made_while_a_batch_is_in_flight_go_together_in_the_next() -> None:
    doubler = Doubler(held=True)
    calls = CoalescedCalls(doubler.run)
    first, rest = await one_in_flight_then(calls, *range(1, 1000))
    doubler.held = False
    doubler.release()
    results = await asyncio.gather(first, *rest)
    assert results == [2 * item for item in range(1000)]
    assert doubler.batches == [[0], list(range(1, 1000))]


async def test_a_failed_batch_raises_in_every_caller_of_that_batch_only() -> None:
    doubler = Doubler(held=True)
    calls = CoalescedCalls(doubler.run)
    first, failing = await one_in_flight_then(calls, 1, 2)
    doubler.release()
    assert await first == 0
    doubler.fail_with = ConnectionError("redis went away")
    doubler.release()
    for call in failing:
        with pytest.raises(ConnectionError):
            await call
    doubler.fail_with, doubler.held = None, False
    assert await calls(5) == 10
    assert doubler.batches == [[0], [1, 2], [5]]


async def test_a_batch_leader_cancelled_mid_batch_leaves_the_others_items_to_the_next() -> None:
    doubler = Doubler(held=True)
    calls = CoalescedCalls(doubler.run)
    first, (leader, other) = await one_in_flight_then(calls, 1, 2)
    doubler.release()
    assert await first == 0
    await asyncio.sleep(0)
    assert doubler.batches[-1] == [1, 2]  # `leader` runs it, held
    leader.cancel()  # before its batch ends: nothing of it reaches anyone
    with pytest.raises(asyncio.CancelledError):
        await leader
    doubler.held = False
    doubler.release()  # the next batch, [2], may be held already
    assert await other == 4
    assert doubler.batches == [[0], [1, 2], [2]]


async def test_a_caller_cancelled_while_waiting_is_not_run() -> None:
    doubler = Doubler(held=True)
    calls = CoalescedCalls(doubler.run)
    first, (gone, staying) = await one_in_flight_then(calls, 1, 2)
    gone.cancel()
    await asyncio.sleep(0)
    doubler.held = False
    doubler.release()
    assert list(await asyncio.gather(first, staying)) == [0, 4]
    assert doubler.batches == [[0], [2]]


async def test_a_batch_that_gathers_waits_for_calls_that_come_spread_out() -> None:
    doubler = Doubler()
    calls = CoalescedCalls(doubler.run, gather_s=0.2)
    first = asyncio.create_task(calls(0))
    rest = []
    for item in range(1, 4):
        await asyncio.sleep(0.01)  # each a little after the one before
        rest.append(asyncio.create_task(calls(item)))
    assert list(await asyncio.gather(first, *rest)) == [0, 2, 4, 6]
    assert doubler.batches == [[0, 1, 2, 3]]


async def test_a_caller_cancelled_while_its_batch_gathers_is_not_run() -> None:
    doubler = Doubler()
    calls = CoalescedCalls(doubler.run, gather_s=0.2)
    leader = asyncio.create_task(calls(0))
    await asyncio.sleep(0.01)
    other = asyncio.create_task(calls(1))
    await asyncio.sleep(0.01)
    leader.cancel()
    assert await other == 2
    assert doubler.batches == [[1]]
