"""arq's Worker with ccfleet's admission: which queued attempts this worker may start.

arq starts queued jobs in score order (interactive before batch, first come first served).
This worker additionally passes over every job while its account cools, its CLI cannot
serve (`broken`) or it drains, batch jobs beyond its batch slots (the rest are kept for
interactive work), and attempts that asked to avoid its account. It decides from the arq job
ids alone (`AttemptId`), without a Redis read per job, and claims each with one script
(`JobQueue.claim`) that also refuses while the account cools, since a replica of the account
may have met the limit since the last heartbeat. A woken worker claims the attempt announced
on the wake channel without reading the queue first, unless older work waits. A Redis outage
is waited out instead of ending the worker.

It uses arq only through shared/queue/arq_adapter.py's `ArqWorker`. The claim it made on an
attempt reaches the job function (worker/job_function.py) in the attempt's `JobContext`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from redis.exceptions import RedisError

from shared.process.vital_tasks import VitalTasks
from shared.queue.arq_adapter import ArqWorker
from shared.queue.job import RUN_MESSAGES_JOB, AttemptId
from shared.queue.job_queue import Claim, JobQueue
from worker.context import JobContext, WorkerContext, WorkerState
from worker.job_function import run_messages
from worker.queue_wakeup import QueueWakeup

logger = logging.getLogger(__name__)

_REDIS_RETRY_S = 1.0


class FleetWorker(ArqWorker):
    def __init__(
        self,
        *,
        state: WorkerState,
        vital: VitalTasks,
        batch_slots: int,
        wakeup: QueueWakeup,
        queue: JobQueue,
        redis_outage_s: float,
        job_max_tries: int,
        **kwargs: Any,
    ) -> None:
        # arq's poll loop sleeps `poll_delay` between iterations; ours waits for a wake-up
        # at the end of each iteration instead (worker/queue_wakeup.py), so arq's is zero.
        super().__init__(
            job_name=RUN_MESSAGES_JOB,
            job_max_tries=job_max_tries,
            redis_outage_s=redis_outage_s,
            poll_delay=0,
            **kwargs,
        )
        self.state = state
        self.vital = vital
        self.batch_slots = batch_slots
        self.wakeup = wakeup
        self.queue = queue
        self._claims: dict[str, Claim] = {}
        """By arq job id: attempts claimed here whose job function has not taken its claim."""

    async def start_queued(self, job_ids: list[bytes]) -> None:
        """Start the due attempts read from the queue, claiming each with `JobQueue.claim`."""
        await self._claim_and_start(job_ids, first_only=False)

    async def _start_announced(self) -> bool:
        """Start the attempts announced since the last look without reading the queue: True
        if one started and none had older work before it (the queue is read next time).
        Anything else announced (a cancel) makes it the full look, which aborts jobs too."""
        announced = self.wakeup.take_announced()
        attempts = [raw for raw in announced if AttemptId.parse(raw.decode())]
        if not attempts or len(attempts) < len(announced):
            return False
        return await self._claim_and_start(attempts, first_only=True)

    async def _claim_and_start(self, job_ids: list[bytes], *, first_only: bool) -> bool:
        """Claim and start the admissible ones; True if one started and, `first_only`, none
        was behind older work."""
        started = False
        candidates = self.admissible(job_ids)
        if len(candidates) > 1:
            candidates = await self.not_started(candidates)
        # One at a time: a batch job counts against the batch slots only once it started
        # here. Counting the jobs arq is about to try would count those running elsewhere
        # (still at the head of the queue), and no worker but one would run batch work.
        for raw in candidates:
            if raw.startswith(b"b|") and self._running_batch() >= self.batch_slots:
                continue
            if not await self.take_slot():
                return started
            job_id = raw.decode()
            claim = await self.queue.claim(
                job_id,
                worker_id=self.state.worker_id,
                account=self.state.account,
                in_progress_ms=self.in_progress_ms,
                first_only=first_only,
            )
            if claim.outcome == "cooling":
                self.state.cooling_until = claim.cooling_until
            if not claim.runs:
                self.give_back_slot()
                if claim.outcome in ("cooling", "behind"):
                    return False
                continue  # started elsewhere, or no longer queued
            self._claims[job_id] = claim
            self.start(job_id, claim.score)
            started = True
        return started

    async def run_attempt(self, job_id: str, payload: dict[str, Any]) -> None:
        """The job function as arq calls it: `run_messages` with its typed context."""
        claim = self._claims.pop(job_id, None)
        if claim is None:  # every run starts from a claim (`_claim_and_start`)
            logger.warning("attempt %s reached the job function unclaimed; skipped", job_id)
            return
        worker = self.startup_value("worker", WorkerContext)  # put there by worker/main.py
        await run_messages(JobContext(worker=worker, redis=self.pool, claim=claim), payload)

    async def after_run(self, job_id: str) -> None:
        claim = self._claims.pop(job_id, None)
        attempt = AttemptId.parse(job_id)
        if claim is not None and claim.outcome == "claimed" and attempt is not None:
            # arq ended it without running the job function (expired, out of tries).
            await self.queue.release(attempt, self.state.worker_id)

    def admissible(self, job_ids: list[bytes]) -> list[bytes]:
        if self.state.draining or self.state.broken_reason or self.state.cooling:
            return []
        batch_room = self._running_batch() < self.batch_slots
        chosen = []
        now_ms = int(time.time() * 1000)
        for raw in job_ids:
            attempt = AttemptId.parse(raw.decode())
            if attempt is not None and self.state.account in attempt.avoid_accounts:
                continue
            if attempt is not None and attempt.held_for_another(self.state.account, now_ms):
                # Look again when the head start runs out (nothing else wakes us for it).
                self.wakeup.wake_at(attempt.prefer_until_ms / 1000)
                continue
            if attempt is not None and attempt.held_for_another_worker(
                self.state.worker_id, now_ms
            ):
                self.wakeup.wake_at(attempt.prefer_until_ms / 1000)
                continue
            if attempt is not None and attempt.lane == "batch" and not batch_room:
                continue
            chosen.append(raw)
        return chosen

    def _running_batch(self) -> int:
        return sum(1 for job_id in self.running() if job_id.startswith("b|"))

    async def poll_once(self) -> None:
        # arq lets a Redis error end the worker; a fleet worker waits for Redis to return.
        try:
            if not await self._start_announced():
                await self.read_queue()
        except (RedisError, OSError) as exc:
            logger.warning("redis unavailable (%s); retrying", type(exc).__name__)
            self.forget_ended()  # arq does it at the end of the look we cut
            await asyncio.sleep(_REDIS_RETRY_S)
            return
        await self.wakeup.wait()

    def slot_freed(self) -> None:
        self.wakeup.wake()  # a free slot: look for waiting work now

    def drain_started(self) -> None:
        self.state.draining = True  # take no more jobs
