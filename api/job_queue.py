"""Putting jobs on the arq queue, asking after them, and cancelling them."""

from __future__ import annotations

import time
import uuid

from arq.connections import ArqRedis
from arq.constants import abort_jobs_ss
from arq.jobs import Job, JobStatus

from shared.errors import Overloaded
from shared.jobs import RUN_MESSAGES_JOB, JobRequest
from shared.messages import MessagesRequest


class JobQueue:
    def __init__(self, pool: ArqRedis, *, queue_name: str) -> None:
        self._pool = pool
        self._queue_name = queue_name

    async def submit(self, request: MessagesRequest, *, request_id: str) -> str:
        job_id = "job_" + uuid.uuid4().hex
        payload = JobRequest(
            job_id=job_id,
            request_id=request_id,
            request=request,
            enqueued_at_ms=int(time.time() * 1000),
        )
        job = await self._pool.enqueue_job(
            RUN_MESSAGES_JOB,
            payload.model_dump(mode="json", exclude_unset=True),
            _job_id=job_id,
            _queue_name=self._queue_name,
        )
        if job is None:
            raise Overloaded("Could not queue the request; try again.", retry_after_s=1)
        return job_id

    async def cancel(self, job_id: str) -> None:
        """Ask the worker running (or about to run) the job to abort it; the CLI is killed."""
        await self._pool.zadd(abort_jobs_ss, {job_id: int(time.time() * 1000)})

    async def has_ended(self, job_id: str) -> bool:
        """True when arq no longer runs or holds the job (finished, failed or lost)."""
        status = await Job(job_id, self._pool, _queue_name=self._queue_name).status()
        return status in (JobStatus.complete, JobStatus.not_found)
