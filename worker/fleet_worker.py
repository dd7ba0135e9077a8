"""arq's Worker with ccfleet's admission: which queued attempts this worker may start.

arq starts queued jobs in score order (interactive before batch, first come first served).
This worker additionally passes over every job while its account cools, its CLI cannot
serve (`broken`) or it drains, batch jobs beyond its batch slots (the rest are kept for
interactive work), and attempts that asked to avoid its account. It decides from the arq job
ids alone (`AttemptId`), without a Redis read per job; before starting any, it reads its
account's cooldown once, since a replica of the account may have met the limit since the
last heartbeat. A Redis outage is waited out instead of ending the worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from signal import Signals
from typing import Any

from arq.worker import Worker
from redis.exceptions import RedisError

from shared.jobs import AttemptId
from shared.redis_outage import outlasting_outage
from shared.vital_tasks import VitalTasks
from worker.context import WorkerState
from worker.heartbeat import read_account_cooldown
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
        self._redis_outage_s = redis_outage_s

    async def main(self) -> None:
        # arq waits for Redis at start only when it builds its pool itself; ours is built
        # with bounded waits (shared/redis_connection.py), so wait here.
        await outlasting_outage(self.pool.ping, limit_s=self._redis_outage_s)
        await super().main()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        chosen = self.admissible(job_ids)
        if chosen:
            await read_account_cooldown(self.pool, self.state)
            if self.state.cooling:
                return
        # One at a time: a batch job counts against the batch slots only once it started
        # here. Counting the jobs arq is about to try would count those running elsewhere
        # (still at the head of the queue), and no worker but one would run batch work.
        for raw in chosen:
            if raw.startswith(b"b|") and self._running_batch() >= self.batch_slots:
                continue
            await super().start_jobs([raw])

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
