"""Riding out a short Redis outage (a restart, a failover) instead of failing at once.

Every client waits with redis-py's `EqualJitterBackoff`: exponential (0.05 s doubling up to
1 s), each delay drawn from its upper half, so a hundred relays and workers that lost Redis
at the same instant do not all knock again at the same instants when it comes back. The
wait is bounded by time (`CCFLEET_REDIS_OUTAGE_GRACE_S`), not by a count of tries: a restart
lasts as long as it lasts, whatever the delays were.

What is retried must be safe to send twice: a command cut off by the restart may have run.
The scripts that write (submitting a job, publishing a chunk) are written to be.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.backoff import EqualJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

T = TypeVar("T")

OUTAGE_ERRORS = (RedisConnectionError, RedisTimeoutError)
"""Redis is away (refused, reset, timed out, loading its data after a restart), not wrong.
redis-py raises these for every socket failure; a bare OSError is someone else's (a broken
pipe to the CLI, say), and a ResponseError is Redis refusing a command: neither is an outage."""

_FIRST_DELAY_S = 0.05
_MAX_DELAY_S = 1.0


async def outlasting_outage(operation: Callable[[], Awaitable[T]], *, limit_s: float) -> T:
    """`operation()`, tried again with jittered backoff while Redis is away, for at most
    `limit_s` from its first failure (an operation may wait long before Redis goes away:
    a relay waiting for a chunk); then the last error is raised."""
    deadline: float | None = None
    backoff = EqualJitterBackoff(cap=_MAX_DELAY_S, base=_FIRST_DELAY_S)
    failures = 0
    while True:
        try:
            return await operation()
        except OUTAGE_ERRORS as exc:
            if deadline is None:
                deadline = time.monotonic() + limit_s
            failures += 1
            delay = min(backoff.compute(failures), deadline - time.monotonic())
            if delay <= 0:
                raise
            logger.warning("redis unavailable (%s); retrying in %.2fs", type(exc).__name__, delay)
            await asyncio.sleep(delay)
