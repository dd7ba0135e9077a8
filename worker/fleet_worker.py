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
"""

from __future__ import annotations

import asyncio
import logging
import time
from signal import Signals
from typing import Any

from arq.constants import in_progress_key_prefix
from arq.worker import Worker
from redis.exceptions import RedisError

from shared.broker.outage import outlasting_outage
from shared.process.vital_tasks import VitalTasks
from shared.queue.job import AttemptId
from shared.queue.job_queue import JobQueue
from worker.context import WorkerState
from worker.queue_wakeup import QueueWakeup

logger = logging.getLogger(__name__)

_REDIS_RETRY_S = 1.0


class FleetWorker(Worker):
    def __init__(
        self,
        *,
        state: WorkerState,
        vital: VitalTasks,
        batch_slots: int,
        wakeup: QueueWakeup,
        queue: JobQueue,
        redis_outage_s: float,
        **kwargs: Any,
    ) -> None:
        # arq's poll loop sleeps `poll_delay` between iterations; ours waits for a wake-up
        # at the end of each iteration instead (worker/queue_wakeup.py), so arq's is zero.
        super().__init__(poll_delay=0, **kwargs)
        self.state = state
        self.vital = vital
        self.batch_slots = batch_slots
        self.wakeup = wakeup
        self.queue = queue
        self._redis_outage_s = redis_outage_s

    async def main(self) -> None:
        # arq waits for Redis at start only when it builds its pool itself; ours is built
        # with bounded waits (shared/broker/connection.py), so wait here.
        await outlasting_outage(self.pool.ping, limit_s=self._redis_outage_s)
        await super().main()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's `start_jobs`, claiming each attempt with `JobQueue.claim`."""
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
            candidates = await self._not_in_progress(candidates)
        # One at a time: a batch job counts against the batch slots only once it started
        # here. Counting the jobs arq is about to try would count those running elsewhere
        # (still at the head of the queue), and no worker but one would run batch work.
        for raw in candidates:
            if raw.startswith(b"b|") and self._running_batch() >= self.batch_slots:
                continue
            await self.sem.acquire()
            if self.job_counter >= self.max_jobs:
                self.sem.release()
                return started
            job_id = raw.decode()
            claim = await self.queue.claim(
                job_id,
                worker_id=self.state.worker_id,
                account=self.state.account,
                in_progress_ms=int(self.in_progress_timeout_s * 1000),
                first_only=first_only,
            )
            if claim.outcome == "cooling":
                self.state.cooling_until = claim.cooling_until
            if not claim.runs:
                self.sem.release()
                if claim.outcome in ("cooling", "behind"):
                    return False
                continue  # started elsewhere, or no longer queued
            self.state.claims[job_id] = claim  # for the job function (worker/job_function.py)
            self.job_counter += 1
            task = self.loop.create_task(self.run_job(job_id, claim.score))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task
            started = True
        return started

    async def _not_in_progress(self, job_ids: list[bytes]) -> list[bytes]:
        """Those not started yet, from one read: arq keeps the jobs running anywhere in its
        queue until they end, and a claim each would be a round trip each."""
        marks = await self.pool.mget([in_progress_key_prefix + raw.decode() for raw in job_ids])
        return [raw for raw, mark in zip(job_ids, marks, strict=True) if mark is None]

    async def run_job(self, job_id: str, score: int) -> None:
        try:
            await super().run_job(job_id, score)
        finally:
            claim = self.state.claims.pop(job_id, None)
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
            if attempt is not None and attempt.lane == "batch" and not batch_room:
                continue
            chosen.append(raw)
        return chosen

    def _running_batch(self) -> int:
        return sum(
            1 for job_id, task in self.tasks.items() if job_id.startswith("b|") and not task.done()
        )

    async def _poll_iteration(self) -> None:
        # arq lets a Redis error end the worker; a fleet worker waits for Redis to return.
        try:
            if not await self._start_announced():
                await super()._poll_iteration()
        except (RedisError, OSError) as exc:
            logger.warning("redis unavailable (%s); retrying", type(exc).__name__)
            self._forget_finished_tasks()  # arq does it at the end of the iteration we cut
            await asyncio.sleep(_REDIS_RETRY_S)
            return
        await self.wakeup.wait()

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self.wakeup.wake()  # a free slot: look for waiting work now

    def _forget_finished_tasks(self) -> None:
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]

    def handle_sig_wait_for_completion(self, signum: Signals) -> None:
        """SIGTERM/SIGINT: take no more jobs, let running ones finish (up to the drain time)."""
        self.state.draining = True
        super().handle_sig_wait_for_completion(signum)
