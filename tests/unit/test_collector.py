"""A serving process runs the garbage collector with short pauses: start-up's objects frozen
out of every collection, full collections minutes apart (shared/process/collector.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from shared.process.collector import FULL_AFTER_MIDDLE, steady_collections


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


def full_collections() -> int:
    return int(gc.get_stats()[2]["collections"])


def full_collections_while_keeping(objects: int) -> int:
    """Full collections the collector starts by itself while `objects` new containers are
    made and kept (each young and middle collection promotes them)."""
    before = full_collections()
    kept = [[i] for i in range(objects)]
    ran = full_collections() - before
    del kept
    return ran


def test_start_up_objects_are_left_out_of_collections_until_the_block_ends() -> None:
    made_at_start_up = ["an object of start-up"]
    thresholds = gc.get_threshold()
    with steady_collections():
        assert not any(o is made_at_start_up for o in gc.get_objects())
    assert any(o is made_at_start_up for o in gc.get_objects())
    assert gc.get_threshold() == thresholds


def test_full_collections_wait_for_many_middle_generation_collections() -> None:
    with steady_collections():
        assert gc.get_threshold()[2] == FULL_AFTER_MIDDLE
        assert full_collections_while_keeping(200_000) == 0


def test_without_it_the_same_work_sets_off_full_collections() -> None:
    gc.collect()
    gc.freeze()  # the same start: an old generation that a quarter's growth outgrows at once
    assert full_collections_while_keeping(200_000) > 0
