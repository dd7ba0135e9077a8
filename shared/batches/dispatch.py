"""Moves message batches along: feeds their requests to the job queue, watches them, ends them.

Requests are not queued all at once: `feed` keeps only about as many batch jobs waiting as
the fleet has batch slots, taking them round-robin between batches, so batches progress
together and a late batch does not wait behind a whole earlier one. Each fed request is a
batch-lane job (interactive work goes first; reserved interactive slots are never taken),
retried across accounts like any job.

Each request is admitted when it is fed, as any request is (shared/access/admission.py), on
the key that created its batch: over requests or tokens per minute or concurrent requests,
it waits (given back to its batch, fed again at a later tick: the batch lane is the low one,
nothing fails for it); with the key's monthly budget spent, the key revoked or no longer
allowed the model, or the request alone reserving more than the key's tokens per minute, it
ends as an `errored` result that says so.

`check` looks after a batch's requests in flight: a job whose worker died, or that was lost
(its record expired, or its feeder died before queuing it), runs again as a new job; a
batch request has no client stream, so that is always safe. It also expires a batch once
due. Workers call `feed` and `check`; front ends call `cancel` and `expire_if_due`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

import orjson
from redis.asyncio import Redis

from shared.access import admission
from shared.access.client_keys import key_named
from shared.access.quotas import Quotas
from shared.batches.store import BatchStore, InflightEntry, TakenRequest
from shared.batches.wire import BatchState, errored, never_ran
from shared.broker import redis_keys
from shared.broker.outage import outlasting_outage
from shared.errors import (
    BudgetSpent,
    CliFailed,
    FleetError,
    Overloaded,
    PermissionDenied,
    RateLimited,
    TooManyTokens,
)
from shared.fleet.liveness import worker_alive
from shared.queue.job import BatchItem
from shared.queue.job_queue import JobQueue, new_job_id
from shared.queue.requeue import Failure, FailureCause, next_attempt
from shared.wire.messages import MessagesRequest

logger = logging.getLogger(__name__)

# A request claimed this long ago whose job has no record was lost on its way to the queue.
LOST_AFTER_MS = 30_000


Verdict = Literal["run", "wait", "ended"]


@dataclass(frozen=True)
class BatchAdmission:
    """How batch requests are admitted: the key quotas, and how long a lease lasts."""

    quotas: Quotas
    lease_s: float


class BatchDispatch:
    def __init__(
        self,
        redis: Redis,
        store: BatchStore,
        queue: JobQueue,
        *,
        batch_max_waiting: int,
        max_runs: int,
        admission: BatchAdmission | None = None,
        lost_after_ms: int = LOST_AFTER_MS,
        redis_outage_s: float = 0.0,
    ) -> None:
        self._redis = redis
        self._store = store
        self._queue = queue
        self._admission = admission  # None: requests run unadmitted (tests of the lane alone)
        self._batch_max_waiting = batch_max_waiting
        self._max_runs = max_runs  # of one request whose jobs keep getting lost
        self._lost_after_ms = lost_after_ms
        self._redis_outage_s = redis_outage_s

    async def feed(self, *, waiting_target: int) -> int:
        """Queue batch requests until `waiting_target` batch jobs wait; how many were queued."""
        fed = 0
        while await self._redis.zcard(redis_keys.lane_waiting("batch")) < waiting_target:
            job_id = new_job_id()
            taken = await self._store.take_next(job_id)
            if taken is None:
                break
            verdict = await self._admitted(taken)
            if verdict == "wait":
                await self._store.unclaim(taken.batch_id, taken.index)
                break  # its key has no room yet: the next tick tries again
            if verdict == "ended":
                continue
            try:
                await self._submit(taken.batch_id, taken.index, taken.body, job_id, taken.owner)
            except Overloaded:
                logger.info("batch lane full; %s/%d waits", taken.batch_id, taken.index)
                break  # claimed but not queued: `check` queues it again later
            fed += 1
        return fed

    async def refuse_waiting(self, error: FleetError, *, at_most: int = 1000) -> int:
        """End up to `at_most` requests not yet running as `errored` with `error` (every
        account has spent its budget): those queued but waiting, then those not yet fed."""
        ended = 0
        for batch_id in await self._store.open_batch_ids():
            for entry in await self._store.inflight(batch_id):
                job = await self._queue.state(entry.job_id)
                if job is not None and job.status == "waiting" and ended < at_most:
                    await self._queue.cancel(entry.job_id, unqueue=True)
                    custom_id = await self._custom_id(batch_id, entry)
                    await self._store.record(
                        batch_id, entry.index, custom_id, errored(error.to_error())
                    )
                    ended += 1
        while ended < at_most:
            taken = await self._store.take_next(new_job_id())
            if taken is None:
                break
            custom_id = str(orjson.loads(taken.body)["custom_id"])
            await self._store.record(
                taken.batch_id, taken.index, custom_id, errored(error.to_error())
            )
            ended += 1
        return ended

    async def _admitted(self, taken: TakenRequest) -> Verdict:
        """Admit a claimed request on its batch's key: it runs, waits, or ends `errored`."""
        if self._admission is None or not taken.owner:
            return "run"  # auth off: no key, no quotas
        item = orjson.loads(taken.body)
        body = MessagesRequest.model_validate(item["params"])  # valid: checked at creation
        key = await key_named(self._redis, taken.owner)
        try:
            if key is None or key.revoked or (taken.owner_id and key.id != taken.owner_id):
                raise PermissionDenied("The API key that created this batch was revoked.")
            await admission.admit(
                self._admission.quotas,
                key,
                body,
                lane="batch",
                request_id=_request_id(taken.batch_id, taken.index),
                lease_s=self._admission.lease_s,
            )
        except (BudgetSpent, TooManyTokens, PermissionDenied) as refused:
            logger.info("batch %s request %d refused", taken.batch_id, taken.index)
            custom_id = str(item["custom_id"])
            await self._store.record(
                taken.batch_id, taken.index, custom_id, errored(refused.to_error())
            )
            return "ended"
        except RateLimited:
            return "wait"
        return "run"

    async def check(self, batch_id: str) -> None:
        """Expire the batch if due, else re-run its lost requests (one checker at a time)."""
        state = await self.expire_if_due(batch_id)
        if state is None or state.status == "ended":
            return
        for entry in await self._store.inflight(batch_id):
            await self._check_entry(state, entry)

    async def expire_if_due(self, batch_id: str) -> BatchState | None:
        """The batch's state, after ending it first if its expiry passed (even while no
        worker is alive to do it)."""
        state = await self._store.get(batch_id)
        if state is None or state.status == "ended" or state.expires_at_ms > time.time() * 1000:
            return state
        await self._stop_in_flight(batch_id, await self._store.expire(batch_id), "expired")
        return await self._store.get(batch_id)

    async def cancel(self, batch_id: str) -> BatchState | None:
        """Requests not yet running become `canceled`; running ones finish."""
        await self._store.cancel(batch_id)
        for entry in await self._store.inflight(batch_id):
            job = await self._queue.state(entry.job_id)
            if job is None or job.status == "waiting":
                await self._stop_job(batch_id, entry, "canceled")
        return await self._store.get(batch_id)

    async def _check_entry(self, state: BatchState, entry: InflightEntry) -> None:
        job = await self._queue.state(entry.job_id)
        now_ms = time.time() * 1000
        if job is None:
            if now_ms - entry.claimed_at_ms >= self._lost_after_ms:
                await self._run_again(state, entry, "lost", "its job was lost")
        elif job.status == "waiting" and state.status == "canceling":
            await self._stop_job(state.id, entry, "canceled")
        elif job.status == "running" and not await worker_alive(self._redis, job.worker):
            if state.status == "canceling":
                await self._stop_job(state.id, entry, "canceled")
            else:
                await self._run_again(state, entry, "worker_died", f"worker {job.worker} died")
        elif job.status == "cancelled":
            await self._stop_job(state.id, entry, "canceled")
        elif job.status == "done":  # finished without a result: its worker failed to write it
            error = FleetError("The request ended without a result.").to_error()
            await self._store.record(
                state.id, entry.index, await self._custom_id(state.id, entry), errored(error)
            )

    async def _stop_in_flight(self, batch_id: str, stopped: bool, kind: str) -> None:
        if not stopped:
            return
        for entry in await self._store.inflight(batch_id):
            await self._stop_job(batch_id, entry, kind)

    async def _stop_job(self, batch_id: str, entry: InflightEntry, kind: str) -> None:
        await self._queue.cancel(entry.job_id, unqueue=True)
        state = await self._store.get(batch_id)
        if self._admission is not None and state is not None and state.owner:
            # A job stopped before it ran has no worker to end its quota lease.
            await self._admission.quotas.end(state.owner, _request_id(batch_id, entry.index))
        custom_id = await self._custom_id(batch_id, entry)
        await self._store.record(batch_id, entry.index, custom_id, never_ran(kind))

    async def _run_again(
        self, state: BatchState, entry: InflightEntry, cause: FailureCause, why: str
    ) -> None:
        batch_id = state.id
        body = await self._store.request_body(batch_id, entry.index)
        if body is None:
            return  # its result came meanwhile
        await self._queue.cancel(entry.job_id, unqueue=True)
        failure = Failure(cause, attempt=entry.runs, sent=False, batch=True)
        if next_attempt(failure, max_attempts=self._max_runs) is None:
            logger.warning("batch %s request %d failed: %s", batch_id, entry.index, why)
            error = CliFailed(f"The request was lost {entry.runs} times ({why}).").to_error()
            custom_id = str(orjson.loads(body)["custom_id"])
            await self._store.record(batch_id, entry.index, custom_id, errored(error))
            return
        logger.warning("batch %s request %d runs again: %s", batch_id, entry.index, why)
        job_id = new_job_id()
        await self._store.reassign(batch_id, entry.index, job_id, runs=entry.runs + 1)
        try:
            await self._submit(batch_id, entry.index, body, job_id, state.owner)
        except Overloaded:
            logger.info("batch lane full; %s/%d waits", batch_id, entry.index)
            # Not queued: that is no run, and the next check tries again.
            await self._store.reassign(batch_id, entry.index, job_id, runs=entry.runs)

    async def _submit(
        self, batch_id: str, index: int, body: bytes, job_id: str, owner: str
    ) -> None:
        """Queue one request as a batch-lane job, on its batch owner's key (usage, spend).
        A request claimed as Redis went away is queued once it is back (a second submit of
        one job id is a no-op), rather than left claimed until `check` finds it lost."""
        item = orjson.loads(body)
        request = MessagesRequest.model_validate(item["params"])  # valid: checked at creation
        await outlasting_outage(
            lambda: self._queue.submit(
                request,
                request_id=_request_id(batch_id, index),
                lane="batch",
                lane_limit=self._batch_max_waiting,
                job_id=job_id,
                batch=BatchItem(batch_id=batch_id, index=index, custom_id=item["custom_id"]),
                client_key=owner or None,
            ),
            limit_s=self._redis_outage_s,
        )

    async def _custom_id(self, batch_id: str, entry: InflightEntry) -> str:
        body = await self._store.request_body(batch_id, entry.index)
        return str(orjson.loads(body)["custom_id"]) if body is not None else ""


def _request_id(batch_id: str, index: int) -> str:
    """A batch request's id: its job's `request_id`, and what its quota lease is counted as."""
    return f"{batch_id}:{index}"
