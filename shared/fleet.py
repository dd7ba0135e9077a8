"""The fleet's registry of live workers, as kept in Redis by their heartbeats."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from shared import keys


async def live_worker_count(redis: Redis, *, heartbeat_ttl_s: float) -> int:
    """Workers whose last heartbeat is younger than the heartbeat TTL."""
    oldest_ms = int((time.time() - heartbeat_ttl_s) * 1000)
    count: int = await redis.zcount(keys.workers_index(), oldest_ms, "+inf")
    return count
