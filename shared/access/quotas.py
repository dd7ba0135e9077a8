"""Per-key quotas, exact across any number of front ends: one Lua script admits a request.

Requests per minute and tokens per minute are sliding windows of the last 60 s (sorted sets
scored by time; the script reads Redis's clock, so front ends whose clocks or calls interleave
still agree). Tokens are a reservation, as Anthropic's own limiter estimates output from
`max_tokens`: a new job reserves its estimated input plus `max_tokens` when admitted, and when
it ends the worker drops the reservation (`end`) as the ledger books the run's real usage
(shared/access/ledger.py). Concurrency is a sorted set of the requests in flight, each scored
by when its lease ends: the lease ends with the job (the worker's `end`; the front end's
`release` when its client leaves without a resume window; whoever cancels a job no worker
took, `end_unstarted`), and a process that dies leaks nothing past the lease. The monthly
budget is the key's month-to-date spend (shared/access/ledger.py) against its `monthly_usd`.
Over any of them: 429 rate_limit_error with `retry-after`, the seconds until there is room.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis

from shared.access.client_keys import ClientKey
from shared.access.ledger import month_of, next_month_start
from shared.broker import redis_keys
from shared.broker.lua_script import LuaScript
from shared.errors import BudgetSpent, RateLimited, TooManyTokens
from shared.fleet.registry import SHOULD_NOT_RETRY_AFTER_S
from shared.queue.job_queue import JobState

WINDOW_MS = 60_000

_ADMIT = LuaScript.beside(__file__, "quotas.admit.lua")
_END = LuaScript.beside(__file__, "quotas.end.lua")
BUDGET_LIMIT = "monthly budget"


@dataclass(frozen=True)
class QuotaLease:
    """A request admitted under a key's quotas; `release` when its reply ends."""

    key_name: str
    request_id: str
    counts_concurrency: bool


class Quotas:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._admit = _ADMIT.bind(redis)
        self._end = _END.bind(redis)

    async def admit(
        self,
        key: ClientKey,
        request_id: str,
        *,
        lease_s: float,
        tokens: int = 0,
        new_job: bool = True,
    ) -> QuotaLease:
        """Count a request against `key`'s quotas, reserving `tokens` for tokens per minute, or
        raise 429 saying which and how long. A request that starts no job (a resume) takes no
        concurrency lease: the job it attaches to holds one."""
        concurrency = (key.concurrency or 0) if new_job else 0
        now_s = time.time()  # for the month; the script keeps Redis's own time
        month = month_of(now_s)
        limit, wait_ms = await self._admit(
            requests=redis_keys.quota_requests(key.name),
            tokens=redis_keys.quota_tokens(key.name),
            in_flight=redis_keys.quota_in_flight(key.name),
            month_spend=redis_keys.month_spend("key", key.name, month),
            lease_ms=int(lease_s * 1000),
            rpm=key.rpm or 0,
            tpm=key.tpm or 0,
            concurrency=concurrency,
            monthly_budget=key.monthly_usd or 0,
            request_id=request_id,
            next_month_ms=int(next_month_start(now_s) * 1000),
            window_ms=WINDOW_MS,
            reserve=tokens,
        )
        if limit and int(wait_ms) < 0:
            raise TooManyTokens(
                f"This request reserves {tokens} tokens (its estimated input plus max_tokens), "
                f"more than this API key's limit of {key.tpm} tokens per minute.",
                retry_after_s=WINDOW_MS / 1000,
                should_retry=False,
            )
        if limit:
            wait_s = max(1.0, float(wait_ms) / 1000)
            error = BudgetSpent if limit.decode() == BUDGET_LIMIT else RateLimited
            raise error(
                f"This API key has reached its limit of {limit.decode()}.",
                retry_after_s=wait_s,
                should_retry=wait_s <= SHOULD_NOT_RETRY_AFTER_S,
            )
        return QuotaLease(key.name, request_id, counts_concurrency=bool(concurrency))

    async def check_budget(self, key: ClientKey) -> None:
        """429 if `key` has spent its monthly budget (as `admit` says it), counting nothing."""
        if not key.monthly_usd:
            return
        now_s = time.time()
        spent = await self._redis.get(redis_keys.month_spend("key", key.name, month_of(now_s)))
        if spent is not None and float(spent) >= key.monthly_usd:
            raise BudgetSpent(
                f"This API key has reached its limit of {BUDGET_LIMIT}.",
                retry_after_s=max(1.0, next_month_start(now_s) - now_s),
                should_retry=False,
            )

    async def release(self, lease: QuotaLease) -> None:
        """The request's client left and its job is cancelled: end its concurrency lease."""
        if lease.counts_concurrency:
            await self._redis.zrem(redis_keys.quota_in_flight(lease.key_name), lease.request_id)

    async def end_unstarted(self, cancelled: JobState | None) -> None:
        """A job cancelled before any worker took it (`JobQueue.cancel`'s answer) ends its
        hold: a worker ends the hold of a job it ran, and nobody would end this one's."""
        if cancelled is not None and cancelled.status == "waiting" and cancelled.client_key:
            await self.end(cancelled.client_key, cancelled.request_id)

    async def end(self, key_name: str, request_id: str) -> None:
        """The request's job ended: its lease ends and its tokens reservation is settled."""
        await self._end(
            tokens=redis_keys.quota_tokens(key_name),
            in_flight=redis_keys.quota_in_flight(key_name),
            request_id=request_id,
        )
