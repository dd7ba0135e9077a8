"""Watching a quiet job: is it still waiting, running on a live worker, or lost?

A relay asks this whenever its job has been silent for a while (`journal_check_s`). A job
that waited too long, or waits while every account cools or no worker can serve, is
cancelled with an error; a job whose worker died is handed to another worker if the client
has been sent nothing yet, else ended with an error. So a client never waits on a job nobody runs.

One script reads all a check needs: the journal past what the relay has (chunks whose live
message it lost), the job's state and whether its worker beats. A relay of a slow stream
(a chunk a second, say) checks about once per chunk, so a check must cost one round trip.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from shared.broker import redis_keys
from shared.errors import CliFailed, FleetError, Overloaded
from shared.fleet.registry import admission_error, read_fleet
from shared.queue.job_queue import JobQueue, JobState
from shared.settings import Settings

logger = logging.getLogger(__name__)


# KEYS: journal, record. ARGV: the first journal entry id wanted, the heartbeat key prefix,
# then the record's fields (JobState.FIELDS, status and worker first).
_QUIET_READ = """
local journal = redis.call('XRANGE', KEYS[1], ARGV[1], '+')
local state = redis.call('HMGET', KEYS[2], unpack(ARGV, 3))
local alive = 0
if state[1] == 'running' and state[2] then alive = redis.call('EXISTS', ARGV[2] .. state[2]) end
local chunks = {}
for i, entry in ipairs(journal) do chunks[i] = entry[2][2] end
return {chunks, state, alive}
"""


@dataclass(frozen=True)
class QuietCheck:
    journal: list[bytes]
    """The journaled chunks after the relay's last one (raw)."""
    lives: bool
    """False once the job ended: `journal` then holds its last chunks."""


class JobWatch:
    def __init__(self, redis: Redis, queue: JobQueue, settings: Settings) -> None:
        self._redis = redis
        self._queue = queue
        self._settings = settings
        self._quiet_read = redis.register_script(_QUIET_READ)

    async def check(self, job_id: str, *, after_seq: int) -> QuietCheck:
        """Raise if the job cannot answer any more; else what the journal holds after
        `after_seq` and whether the job lives."""
        journal, raw_state, worker_alive = await self._quiet_read(
            keys=[redis_keys.job_journal(job_id), redis_keys.job_record(job_id)],
            args=[f"{after_seq + 1}-0", redis_keys.worker_heartbeat(""), *JobState.FIELDS],
        )
        state = JobState.parse(raw_state)
        if state is None:
            return QuietCheck(journal, lives=False)
        if state.status == "waiting":
            await self._check_waiting(job_id, state)
            return QuietCheck(journal, lives=True)
        if state.status == "running" and not worker_alive:
            lives = await self._take_over_from_dead_worker(job_id, state.worker)
            return QuietCheck(journal, lives=lives)
        return QuietCheck(journal, lives=state.status == "running")

    async def _check_waiting(self, job_id: str, state: JobState) -> None:
        limit_s = (
            self._settings.queue.interactive_max_wait_s
            if state.lane == "interactive"
            else self._settings.queue.batch_max_wait_s
        )
        error: FleetError | None = None
        if time.time() * 1000 - state.enqueued_at_ms > limit_s * 1000:
            error = Overloaded("No worker was free to take the request in time.", retry_after_s=10)
        else:
            fleet = await read_fleet(
                self._redis, heartbeat_ttl_s=self._settings.worker.heartbeat_ttl_s
            )
            error = admission_error(fleet)
        if error is not None:
            await self._queue.cancel(job_id)
            raise error

    async def _take_over_from_dead_worker(self, job_id: str, worker: str) -> bool:
        if await self._redis.xlen(redis_keys.job_journal(job_id)) == 0:
            # Nothing sent, so the record still holds the request: run it again.
            record = await self._queue.record(job_id)
            if record is None:
                return False
            if record.job.attempt < self._settings.jobs.max_attempts:
                logger.warning("worker %s died before answering; re-queued", worker)
                await self._queue.requeue(record.job, avoid_accounts=record.job.avoid_accounts)
                return True
        logger.warning("worker %s died mid-answer", worker)
        await self._queue.cancel(job_id)
        raise CliFailed("The worker answering this request stopped mid-answer; please retry.")
