"""The job function: answer the attempt the worker claimed (worker/fleet_worker.py) with the
CLI and publish; or try elsewhere.

An attempt that has not sent the client anything yet is retried on another account when
its account hits its usage limit (the account cools until its reset), its upstream sends
nothing within the first-byte timeout (the account shows as slow) or fails transiently (429
burst, 5xx, 529), up to `job_max_attempts`, keeping its place in line; the account policy
names the account with most room for the retry (shared/fleet/account_policy.py).
A CLI that fails without a word makes the worker check it at once: one that cannot serve any
more (gone, logged out) leaves the job to other workers and beats as `broken`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from shared.broker.outage import OUTAGE_ERRORS, outlasting_outage
from shared.errors import AccountLimitReached, CliFailed, FleetError, Overloaded, UpstreamSilent
from shared.fleet.account_policy import choose_account
from shared.fleet.affinity import AccountNote
from shared.fleet.headroom import mark_slow
from shared.fleet.registry import FleetSnapshot, all_cooling_error, read_fleet, set_account_cooling
from shared.queue.job import JobRequest
from shared.queue.requeue import Failure, FailureCause, next_attempt
from shared.stream.chunk import Chunk
from shared.telemetry.log import job_id_var, request_id_var
from worker.cli.check import check_cli, record_check
from worker.context import JobContext, WorkerContext
from worker.heartbeat import beat
from worker.reply.accounting import book_run
from worker.reply.answer import answer_with_cli
from worker.reply.batch_collector import BatchCollector
from worker.reply.chunk_publisher import AttemptSuperseded, ChunkPublisher
from worker.reply.run_meter import RunMeter

logger = logging.getLogger(__name__)


async def run_messages(run: JobContext, payload: dict[str, Any]) -> None:
    """Answer one Messages request; every outcome ends the job's chunk stream or re-queues it."""
    worker = run.worker
    job = JobRequest.model_validate(payload)
    job_id_var.set(job.job_id)
    request_id_var.set(job.request_id)
    if run.claim.outcome != "claimed":
        logger.info("attempt %d is stale or cancelled; skipped", job.attempt)
        return
    note = (
        AccountNote(
            job.request,
            worker.state.account,
            ttl_s=worker.settings.queue.affinity_ttl_s,
            named=job.conversation,
            # With the first chunk, not before the hand-off: its next turn comes after that.
            worker=worker.state.worker_id if worker.residents is not None else "",
            worker_ttl_s=int(worker.settings.resident.idle_s),
        )
        if worker.settings.queue.affinity_wait_ms
        else None
    )
    publisher = (
        ChunkPublisher(
            run.redis,
            job.job_id,
            attempt=job.attempt,
            ttl_s=worker.queue.lifetimes.ended_s(),
            max_chunks=worker.settings.journal.max_chunks,
            max_bytes=worker.settings.journal.max_bytes,
            running_ttl_s=worker.queue.lifetimes.running_s(),
            note=note,
            outage_grace_s=worker.settings.redis.outage_grace_s,
        )
        if job.batch is None
        else BatchCollector(run.redis, job.job_id)
    )
    meter = RunMeter()
    try:
        if not await _resumed_after_crash(publisher, run.claim.last_chunk):
            async with _occupied_slot(run, job):
                requeued = superseded = False
                try:
                    requeued = await _answer(job, publisher, run, meter)
                except AttemptSuperseded:
                    superseded = True  # the job's last attempt is another one
                    raise
                finally:  # a cancelled run (its client left) is booked too
                    await book_run(
                        worker,
                        run.redis,
                        job,
                        meter,
                        final=not (requeued or superseded),
                        failed=publisher.failed,
                    )
                if requeued:
                    return  # handed to another attempt
    except AttemptSuperseded:
        # Declared dead while alive, say: the job is another attempt's now (its CLI is stopped).
        logger.warning("attempt %d was superseded; its output was refused", job.attempt)
        return
    if isinstance(publisher, BatchCollector):
        await outlasting_outage(
            lambda: record_batch_result(worker, job, publisher),
            limit_s=worker.settings.redis.outage_grace_s,
        )
    await outlasting_outage(
        lambda: worker.queue.finish(job, handed_off_at=meter.handed_off_at),
        limit_s=worker.settings.redis.outage_grace_s,
    )


async def record_batch_result(
    worker: WorkerContext, job: JobRequest, collector: BatchCollector
) -> None:
    """Persist a batch request's result, then let the feeder fill the slot it leaves."""
    assert job.batch is not None and worker.batches is not None  # a worker built by main.py
    result = collector.result(job.request_id)
    await worker.batches.record(job.batch.batch_id, job.batch.index, job.batch.custom_id, result)
    if worker.feeder is not None:
        worker.feeder.wake()


async def _answer(
    job: JobRequest, publisher: ChunkPublisher, run: JobContext, meter: RunMeter
) -> bool:
    """Answer the job; True if it was re-queued for another attempt instead."""
    worker = run.worker
    wait_ms = int(time.time() * 1000) - job.enqueued_at_ms
    # Logged and measured once the CLI has the request: nothing delays the hand-off.
    worker.metrics.queue_wait.labels(lane=job.lane).observe(max(0, wait_ms) / 1000)
    started = time.monotonic()
    residents = worker.residents if job.batch is None else None  # a batch has no next turn
    try:
        await answer_with_cli(
            job.request,
            job.job_id,
            publisher,
            worker.cli,
            meter=meter,
            pool=worker.pool,
            residents=residents,
            client_key=job.client_key or "",
            after_hand_off=lambda: _beat_now(run),
        )
    except (AccountLimitReached, UpstreamSilent) as error:
        if await _move_off_account(job, publisher, run, error):
            return True
    except FleetError as error:
        if error.transient and await _retry_elsewhere(
            job,
            publisher,
            worker,
            await read_fleet(run.redis, heartbeat_ttl_s=worker.settings.worker.heartbeat_ttl_s),
            cause="upstream_failed",
        ):
            return True
        if isinstance(error, CliFailed) and await _left_to_others(job, publisher, run):
            return True
        await _fail(publisher, worker, error)
    except AttemptSuperseded:
        raise
    except OUTAGE_ERRORS as exc:
        logger.warning("lost redis mid-answer: %r", exc)
        await _fail(
            publisher,
            worker,
            Overloaded("Lost contact with the job queue; please retry.", retry_after_s=1),
        )
    except Exception:
        logger.exception("job crashed")
        await _fail(publisher, worker, FleetError("Internal server error"))
    logger.info(
        "attempt %d done in %.2fs (%d ms after submission), %d chunks",
        job.attempt,
        time.monotonic() - started,
        wait_ms,
        publisher.seq,
    )
    return False


@contextlib.asynccontextmanager
async def _occupied_slot(run: JobContext, job: JobRequest) -> AsyncIterator[None]:
    """Hold one of the worker's slots for the job, its heartbeat saying so at once when the
    CLI has the job's request (`_answer`'s `after_hand_off`: not before, where its two round
    trips would delay the hand-off) and when the slot is freed: the account policy counts
    each account's busy slots (shared/fleet/account_policy.py), and a beat every
    CCFLEET_HEARTBEAT_INTERVAL_S would lag the jobs that start and end between beats."""
    try:
        with run.worker.state.occupied_slot(batch=job.lane == "batch"):
            yield
    finally:
        await _beat_now(run)


async def _beat_now(run: JobContext) -> None:
    """One heartbeat now; a Redis outage leaves it to the next regular one."""
    try:
        await beat(run.redis, run.worker.state, ttl_s=run.worker.settings.worker.heartbeat_ttl_s)
    except OUTAGE_ERRORS as exc:
        logger.warning("heartbeat on a slot's change failed: %s", type(exc).__name__)


async def _fail(publisher: ChunkPublisher, worker: WorkerContext, error: FleetError) -> None:
    worker.state.last_error = error.message
    logger.warning("job failed: %s (%s)", error.error_type, error.message)
    if not publisher.ended:
        # Redis may be why the job failed: the publisher waits for it, so the client hears
        # of the failure.
        await publisher.publish_error(error)


async def _cool_account(run: JobContext, limit: AccountLimitReached) -> None:
    worker = run.worker
    worker.state.cooling_until = limit.resets_at
    worker.state.last_error = f"usage limit ({limit.reason})"
    await set_account_cooling(
        run.redis, worker.state.account, until_s=limit.resets_at, reason=limit.reason
    )
    logger.warning(
        "account %s cools until %.0f (%s)", worker.state.account, limit.resets_at, limit.reason
    )


async def _move_off_account(
    job: JobRequest,
    publisher: ChunkPublisher,
    run: JobContext,
    error: AccountLimitReached | UpstreamSilent,
) -> bool:
    """The account cannot answer now: at its limit it cools until the reset; silent past the
    first-byte timeout it shows as slow. True if the job was re-queued for another account;
    else its client is told."""
    worker = run.worker
    limit = error if isinstance(error, AccountLimitReached) else None
    if limit is not None:
        await _cool_account(run, limit)
    else:
        logger.warning("account %s: the upstream sent nothing in time", worker.state.account)
        await mark_slow(run.redis, worker.state.account, now_s=time.time())
    fleet = await read_fleet(run.redis, heartbeat_ttl_s=worker.settings.worker.heartbeat_ttl_s)
    cause: FailureCause = "account_limit" if limit is not None else "upstream_silent"
    if await _retry_elsewhere(job, publisher, worker, fleet, cause=cause):
        return True
    await _fail(publisher, worker, (limit and all_cooling_error(fleet)) or error)
    return False


async def _retry_elsewhere(
    job: JobRequest,
    publisher: ChunkPublisher,
    worker: WorkerContext,
    snapshot: FleetSnapshot,
    *,
    cause: FailureCause,
) -> bool:
    """Re-queue the job for its next attempt on another account, if it may run again
    (shared/queue/requeue.py); the account policy names the one with the most room."""
    retry = next_attempt(
        Failure.of(job, cause, sent=publisher.seq > 0, account=worker.state.account),
        max_attempts=worker.settings.jobs.max_attempts,
        free_accounts=[account.name for account in snapshot.available_accounts()],
        backoff_s=worker.settings.jobs.retry_backoff_s,
    )
    if retry is None:
        return False
    if retry.backoff_s > 0:
        await asyncio.sleep(retry.backoff_s)
    avoid = retry.avoid_accounts
    queue = worker.settings.queue
    prefer = choose_account(
        snapshot,
        policy=queue.account_policy,
        threshold=queue.headroom_threshold,
        conversation_account="",
        now_s=time.time(),
        avoid=avoid,
    )
    following = await worker.queue.requeue(
        job, avoid_accounts=avoid, prefer_account=prefer, prefer_for_ms=queue.affinity_wait_ms
    )
    logger.info("re-queued as attempt %s avoiding %s", following and following.attempt, avoid)
    return following is not None


async def _left_to_others(job: JobRequest, publisher: ChunkPublisher, run: JobContext) -> bool:
    """Check the CLI after it failed; if it cannot serve, re-queue the job (if nothing was sent)
    and beat as broken now, so relays see at once whether any worker is left."""
    worker = run.worker
    record_check(worker.state, await check_cli(worker.cli.claude_bin, worker.cli.base_env))
    if not worker.state.broken_reason:
        return False
    await beat(run.redis, worker.state, ttl_s=worker.settings.worker.heartbeat_ttl_s)
    retry = next_attempt(
        Failure.of(job, "cli_broken", sent=publisher.seq > 0),
        max_attempts=worker.settings.jobs.max_attempts,
    )
    if retry is None:
        return False
    return await worker.queue.requeue(job, avoid_accounts=retry.avoid_accounts) is not None


async def _resumed_after_crash(publisher: ChunkPublisher, previous: Chunk | None) -> bool:
    """A re-run of an attempt whose earlier run already streamed (`previous`, the last chunk
    of its journal) must not start a second answer."""
    if previous is None:
        return False
    publisher.seq = previous.seq
    publisher.ended = previous.is_terminal
    if not previous.is_terminal:
        await publisher.publish_error(
            CliFailed("The worker answering this request stopped mid-answer; please retry.")
        )
    return True
