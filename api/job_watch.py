"""Watching a quiet job: is it still waiting, running on a live worker, or lost?

A relay asks this whenever its job has been silent for a while (`journal_check_s`). A job
that waited too long, or waits while every account cools or no worker can serve, is
cancelled with an error; a job whose worker died is handed to another worker if the client
has been sent nothing yet, else ended with an error. So a client never waits on a job nobody runs.
"""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis

from shared import keys
from shared.errors import CliFailed, FleetError, Overloaded
from shared.fleet import admission_error, read_fleet, worker_alive
from shared.job_queue import JobQueue, JobState
from shared.settings import Settings

logger = logging.getLogger(__name__)


class JobWatch:
    def __init__(self, redis: Redis, queue: JobQueue, settings: Settings) -> None:
        self._redis = redis
        self._queue = queue
        self._settings = settings

    async def check(self, job_id: str) -> bool:
        """Raise if the job cannot answer any more; False if it ended (its last chunks may
        still be in the journal), True while it lives."""
        state = await self._queue.state(job_id)
        if state is None:
            return False
        if state.status == "waiting":
            await self._check_waiting(job_id, state)
            return True
        if state.status == "running" and not await worker_alive(self._redis, state.worker):
            return await self._take_over_from_dead_worker(job_id, state.worker)
        return state.status == "running"

    async def _check_waiting(self, job_id: str, state: JobState) -> None:
        limit_s = (
            self._settings.interactive_max_wait_s
            if state.lane == "interactive"
            else self._settings.batch_max_wait_s
        )
        error: FleetError | None = None
        if time.time() * 1000 - state.enqueued_at_ms > limit_s * 1000:
            error = Overloaded("No worker was free to take the request in time.", retry_after_s=10)
        else:
            fleet = await read_fleet(self._redis, heartbeat_ttl_s=self._settings.heartbeat_ttl_s)
            error = admission_error(fleet)
        if error is not None:
            await self._queue.cancel(job_id)
            raise error

    async def _take_over_from_dead_worker(self, job_id: str, worker: str) -> bool:
        if await self._redis.xlen(keys.job_journal(job_id)) == 0:
            # Nothing sent, so the record still holds the request: run it again.
            record = await self._queue.record(job_id)
            if record is None:
                return False
            if record.job.attempt < self._settings.job_max_attempts:
                logger.warning("worker %s died before answering; re-queued", worker)
                await self._queue.requeue(record.job, avoid_accounts=record.job.avoid_accounts)
                return True
        logger.warning("worker %s died mid-answer", worker)
        await self._queue.cancel(job_id)
        raise CliFailed("The worker answering this request stopped mid-answer; please retry.")
