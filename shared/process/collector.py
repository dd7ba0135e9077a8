"""How a long-lived asyncio process runs Python's garbage collector: short pauses, rare long ones.

A full collection visits every object the collector tracks, and stops the event loop while it
does. A front end relaying 1,000 streams tracks ~250,000 (each stream's tasks hold dozens of
coroutines, cells and bound methods); a full collection of those took 150-290 ms of CPU
(bench/loop_probe.py, docs/benchmarks.md), a stall every open stream waits out. With
CPython's default thresholds one came every ~5 s at that load: enough for one in most
10-second windows, which then hold the slowest 1 % of deliveries.

So, once start-up is done (`steady_collections`):
- start-up's objects (modules, classes, the app) are collected once and then frozen out of
  every later collection (gc.freeze): a full collection visits ~70,000 fewer objects;
- a full collection waits for `FULL_AFTER_MIDDLE` collections of the middle generation
  instead of 10 (and, as always, for the old generation to have grown by a quarter): minutes
  apart under load instead of seconds. Young collections go on as before (well under a
  millisecond each), and they free nearly all of this process's cyclic garbage.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

FULL_AFTER_MIDDLE = 1000
"""Middle-generation collections before a full one may run (CPython's default: 10). At 1,000
streams a chunk a second a front end runs ~2 a second: a full collection ~8 minutes apart."""


@contextlib.contextmanager
def steady_collections() -> Iterator[None]:
    """For the life of the block (a process's serving life, after start-up): start-up's
    objects frozen, full collections rare. Undone on exit."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(thresholds[0], thresholds[1], FULL_AFTER_MIDDLE)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
