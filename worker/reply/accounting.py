"""Books each CLI run: the ledger, the key's quotas, the metrics, the account's budget and
its usage windows (shared/fleet/headroom.py).

A job's last run also ends its quotas' hold: its concurrency lease ends (a client that left
inside its resume window left the lease with the job) and its tokens reservation gives way to
the usage the ledger books.

An account with a monthly budget (`CCFLEET_ACCOUNT_MONTHLY_USD`, `monthly_usd` in the accounts
file) cools once its month-to-date spend reaches it, until the month turns (UTC), as it
would for a usage limit: its workers take no more jobs and others answer.
"""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis

from shared.access.ledger import NO_KEY, LedgerEntry, month_spend, next_month_start, record_usage
from shared.access.quotas import BUDGET_LIMIT, Quotas
from shared.broker.outage import OUTAGE_ERRORS
from shared.fleet.headroom import record_windows
from shared.fleet.registry import set_account_cooling
from shared.queue.job import JobRequest
from worker.context import WorkerContext
from worker.reply.run_meter import RunMeter

logger = logging.getLogger(__name__)

BUDGET_REASON = BUDGET_LIMIT  # batch dispatch reads it (shared/access/admission.py)


async def book_run(
    worker: WorkerContext,
    redis: Redis,
    job: JobRequest,
    meter: RunMeter,
    *,
    final: bool,
    failed: bool,
) -> None:
    """Book what the run used; `final`: the job's last attempt (it counts as a request)."""
    usage = meter.usage
    metrics = worker.metrics
    key = job.client_key or NO_KEY
    for kind, count in (
        ("input", usage.input_tokens),
        ("output", usage.output_tokens),
        ("cache_read", usage.cache_read_tokens),
        ("cache_write", usage.cache_write_tokens),
    ):
        metrics.tokens.labels(type=kind, key=key).inc(count)
    metrics.cost_usd.labels(account=worker.state.account).inc(usage.cost_usd)
    if meter.cli_start_s is not None:
        metrics.cli_start.observe(meter.cli_start_s)
    entry = LedgerEntry(
        key=job.client_key,
        account=worker.state.account,
        model=job.request.model,
        attempt_id=f"{job.job_id}:{job.attempt}",
        usage=usage,
        requests=int(final),
        errors=int(final and failed),
    )
    try:
        spend = await record_usage(
            redis,
            entry,
            now_s=time.time(),
            retention_days=worker.settings.access.usage_retention_days,
        )
        if final and job.client_key is not None:
            await Quotas(redis).end(job.client_key, job.request_id)
        await record_windows(redis, worker.state.account, meter.windows)
    except OUTAGE_ERRORS as exc:
        logger.warning("usage not booked, redis unavailable: %r", exc)
        return
    await cool_if_over_budget(worker, redis, spend)


async def cool_if_over_budget(worker: WorkerContext, redis: Redis, spend_usd: float) -> None:
    budget = worker.state.monthly_usd
    if not budget or spend_usd < budget:
        return
    until_s = next_month_start(time.time())
    worker.state.cooling_until = until_s
    worker.state.last_error = f"{BUDGET_REASON} ({spend_usd:.2f} of {budget:.2f} USD)"
    await set_account_cooling(redis, worker.state.account, until_s=until_s, reason=BUDGET_REASON)
    logger.warning(
        "account %s spent %.2f of its %.2f USD this month; cools until the month turns",
        worker.state.account,
        spend_usd,
        budget,
    )


async def check_budget_at_start(worker: WorkerContext, redis: Redis) -> None:
    """A worker starting in a month its account has already spent cools at once."""
    if worker.state.monthly_usd:
        spent = await month_spend(redis, "account", [worker.state.account], now_s=time.time())
        await cool_if_over_budget(worker, redis, spent[worker.state.account])
