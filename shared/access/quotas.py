"""Per-key quotas, exact across any number of front ends: one Lua script admits a request.

Requests per minute and tokens per minute are sliding windows of the last 60 s (sorted sets
scored by time; the script reads Redis's clock, so front ends whose clocks or calls interleave
still agree); tokens are added by the worker when a run reports them (shared/access/ledger.py),
so a minute's tokens count from the moment they are known. Concurrency is a sorted set of the
requests in flight, each scored by when its lease ends: the front end removes it when the
reply ends, and a front end that dies leaks nothing past the lease. The monthly budget is the
key's month-to-date spend (shared/access/ledger.py) against its `monthly_usd`. Over any of them:
429 rate_limit_error with `retry-after`, the seconds until there is room.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis

from shared.access.client_keys import ClientKey
from shared.access.ledger import month_of, next_month_start
from shared.broker import redis_keys
from shared.broker.lua_script import LuaScript
from shared.errors import RateLimited
from shared.fleet.registry import SHOULD_NOT_RETRY_AFTER_S

WINDOW_MS = 60_000

_ADMIT = LuaScript.beside(__file__, "quotas.admit.lua")


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

    async def admit(self, key: ClientKey, request_id: str, *, lease_s: float) -> QuotaLease:
        """Count a request against `key`'s quotas, or raise 429 saying which and how long."""
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
            concurrency=key.concurrency or 0,
            monthly_budget=key.monthly_usd or 0,
            request_id=request_id,
            next_month_ms=int(next_month_start(now_s) * 1000),
            window_ms=WINDOW_MS,
        )
        if limit:
            wait_s = max(1.0, float(wait_ms) / 1000)
            raise RateLimited(
                f"This API key has reached its limit of {limit.decode()}.",
                retry_after_s=wait_s,
                should_retry=wait_s <= SHOULD_NOT_RETRY_AFTER_S,
            )
        return QuotaLease(key.name, request_id, counts_concurrency=bool(key.concurrency))

    async def release(self, lease: QuotaLease) -> None:
        if lease.counts_concurrency:
            await self._redis.zrem(redis_keys.quota_in_flight(lease.key_name), lease.request_id)
