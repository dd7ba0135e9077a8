"""A long-lived task that ends stops its process, with a log line naming it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shared.process.vital_tasks import VitalTasks

BOUND_S = 5.0


class Owner:
    def __init__(self) -> None:
        self.asked_to_stop = asyncio.Event()
        self.vital = VitalTasks(on_death=self.asked_to_stop.set)


async def forever() -> None:
    await asyncio.Event().wait()


async def test_a_task_that_dies_asks_its_process_to_stop_and_logs_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner = Owner()

    async def broken() -> None:
        await asyncio.sleep(0)
        raise KeyError("unforeseen")

    owner.vital.start(forever(), name="heartbeat")
    owner.vital.start(broken(), name="chunk-hub")
    async with asyncio.timeout(BOUND_S):
        await owner.asked_to_stop.wait()
    assert owner.vital.failed == "chunk-hub"
    [record] = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert "chunk-hub" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], KeyError)
    await owner.vital.stop()


@pytest.mark.parametrize("ending", ["returns", "is cancelled"])
async def test_a_task_that_ends_without_an_error_is_a_death_too(ending: str) -> None:
    owner = Owner()

    async def quits() -> None:
        await asyncio.sleep(0)

    owner.vital.start(quits() if ending == "returns" else forever(), name="heartbeat")
    if ending == "is cancelled":
        owner.vital.tasks["heartbeat"].cancel()
    async with asyncio.timeout(BOUND_S):
        await owner.asked_to_stop.wait()
    assert owner.vital.failed == "heartbeat"


async def test_stopping_the_process_cancels_its_tasks_without_a_death() -> None:
    owner = Owner()
    owner.vital.start(forever(), name="heartbeat")
    await asyncio.sleep(0)
    await owner.vital.stop()
    assert owner.vital.tasks["heartbeat"].cancelled()
    assert owner.vital.failed is None
    assert not owner.asked_to_stop.is_set()
