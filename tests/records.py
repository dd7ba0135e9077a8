"""A job record as the queue leaves it for a running attempt, for tests that publish chunks
without queueing a job (publishing is fenced on the record's attempt)."""

from __future__ import annotations

from redis.asyncio import Redis

from shared.broker import redis_keys


async def running_attempt(redis: Redis, job_id: str, attempt: int = 1) -> None:
    await redis.hset(  # type: ignore[misc]  # redis-py 5 types it sync-or-async
        redis_keys.job_record(job_id), mapping={"attempt": attempt, "status": "running"}
    )
