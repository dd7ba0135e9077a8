"""Riding out a short Redis outage (a restart, a failover) instead of failing at once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

T = TypeVar("T")

OUTAGE_ERRORS = (RedisConnectionError, RedisTimeoutError)
"""Redis is away (refused, reset, timed out, loading its data after a restart), not wrong.
redis-py raises these for every socket failure; a bare OSError is someone else's (a broken
pipe to the CLI, say), and a ResponseError is Redis refusing a command: neither is an outage."""

_FIRST_DELAY_S = 0.1
_MAX_DELAY_S = 2.0


async def outlasting_outage(operation: Callable[[], Awaitable[T]], *, limit_s: float) -> T:
    """`operation()`, tried again with backoff while Redis is away, for at most `limit_s`;
    then the last error is raised."""
    deadline = time.monotonic() + limit_s
    delay = _FIRST_DELAY_S
    while True:
        try:
            return await operation()
        except OUTAGE_ERRORS as exc:
            if time.monotonic() + delay > deadline:
                raise
            logger.warning("redis unavailable (%s); retrying in %.1fs", type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY_S)
