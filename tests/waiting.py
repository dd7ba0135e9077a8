"""Waiting on state in tests: poll a predicate until it holds, or fail at a deadline.

Tests order events by waiting for the state the next step needs (a request seen upstream,
a job queued, a signal received), never by sleeping a guessed time: on a loaded machine a
sleep is either too short (a flake) or too long (a slow suite).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

POLL_S = 0.05


def wait_until(predicate: Callable[[], object], timeout_s: float, what: str) -> None:
    """Return once `predicate()` is true; AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(POLL_S)


async def async_wait_until(predicate: Callable[[], object], timeout_s: float, what: str) -> None:
    """`wait_until` for async tests: the event loop runs while it waits."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(POLL_S)
