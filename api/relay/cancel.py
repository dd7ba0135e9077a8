"""Cancelling a job from the front end (its client left, or it waited too long, or its worker
died): a job that no worker took also gives back what it holds of its key's quotas, its
concurrency lease and its tokens reservation, as nobody else would end them (a worker ends the
hold of a job it ran, when its run is booked)."""

from __future__ import annotations

from redis.asyncio import Redis

from shared.access.quotas import Quotas
from shared.queue.job_queue import JobQueue


async def cancel_job(redis: Redis, queue: JobQueue, job_id: str) -> None:
    await Quotas(redis).end_unstarted(await queue.cancel(job_id))
