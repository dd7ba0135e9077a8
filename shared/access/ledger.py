"""The usage ledger: per client key, per account and per model, per UTC day, what was used.

Workers write it when a CLI run ends (requests, errors, tokens by kind, and the cost in USD
the CLI reports as its result's `total_cost_usd`); `ccfleet usage` and `GET /v1/usage` read
it. The same write adds the run's tokens to its key's tokens-per-minute window and its cost
to the key's and the account's month-to-date spend, which quotas and account budgets use.
Requests without a client key (auth off) are booked under the key `-`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from redis.asyncio import Redis

from shared.broker import redis_keys

NO_KEY = "-"
Dimension = Literal["key", "account", "model"]
DIMENSIONS: tuple[Dimension, ...] = ("key", "account", "model")
COUNTERS = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
)
_SPEND_TTL_S = 40 * 86_400
_TOKEN_WINDOW_MS = 60_000


def day_of(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d")


def month_of(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m")


def next_month_start(epoch_s: float) -> float:
    """When the month after the one of `epoch_s` begins (UTC), in epoch seconds."""
    now = datetime.fromtimestamp(epoch_s, UTC)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, tzinfo=UTC).timestamp()


@dataclass
class Usage:
    """What one CLI run used, as the upstream reported it, and its cost as the CLI priced it."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def quota_tokens(self) -> int:
        """What counts against tokens per minute: input + output."""
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class LedgerEntry:
    key: str | None
    account: str
    model: str
    attempt_id: str
    usage: Usage
    requests: int
    errors: int


async def record_usage(
    redis: Redis, entry: LedgerEntry, *, now_s: float, retention_days: int
) -> float:
    """Book one run; returns the account's month-to-date spend after it (USD)."""
    day, month = day_of(now_s), month_of(now_s)
    retention_s = retention_days * 86_400
    usage = entry.usage
    counts = {
        "requests": entry.requests,
        "errors": entry.errors,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
    }
    key = entry.key or NO_KEY
    account_spend = redis_keys.month_spend("account", entry.account, month)
    async with redis.pipeline(transaction=True) as pipe:
        for dimension, name in (("key", key), ("account", entry.account), ("model", entry.model)):
            row = redis_keys.usage_day(day, dimension, name)
            for field, count in counts.items():
                pipe.hincrby(row, field, count)
            pipe.hincrbyfloat(row, "cost_usd", usage.cost_usd)
            pipe.expire(row, retention_s)
            pipe.sadd(redis_keys.usage_day_names(day, dimension), name)
            pipe.expire(redis_keys.usage_day_names(day, dimension), retention_s)
        if entry.key is not None:
            if usage.quota_tokens:
                member = f"{entry.attempt_id}:{usage.quota_tokens}"
                pipe.zadd(redis_keys.quota_tokens(entry.key), {member: int(now_s * 1000)})
                pipe.pexpire(redis_keys.quota_tokens(entry.key), _TOKEN_WINDOW_MS)
            pipe.incrbyfloat(redis_keys.month_spend("key", entry.key, month), usage.cost_usd)
            pipe.expire(redis_keys.month_spend("key", entry.key, month), _SPEND_TTL_S)
        pipe.incrbyfloat(account_spend, usage.cost_usd)
        pipe.expire(account_spend, _SPEND_TTL_S)
        replies = await pipe.execute()
    return float(replies[-2])


async def month_spend(
    redis: Redis, kind: Literal["key", "account"], names: list[str], *, now_s: float
) -> dict[str, float]:
    """Month-to-date spend (USD) of each key or account."""
    if not names:
        return {}
    month = month_of(now_s)
    values = await redis.mget([redis_keys.month_spend(kind, name, month) for name in names])
    return {name: float(v or 0) for name, v in zip(names, values, strict=True)}


async def read_usage(
    redis: Redis, *, by: Dimension, since: date, until: date | None = None
) -> list[dict[str, object]]:
    """One row per key (or account, or model) summed over the days from `since` to `until`
    (default today, UTC), most expensive first: `{by: name, requests, errors, …, cost_usd}`."""
    last = until or datetime.now(UTC).date()
    days = [(since + timedelta(days=n)).isoformat() for n in range((last - since).days + 1)]
    async with redis.pipeline(transaction=False) as pipe:
        for day in days:
            pipe.smembers(redis_keys.usage_day_names(day, by))
        members = await pipe.execute()
    rows_of: list[tuple[str, str]] = [
        (day, name.decode()) for day, names in zip(days, members, strict=True) for name in names
    ]
    async with redis.pipeline(transaction=False) as pipe:
        for day, name in rows_of:
            pipe.hgetall(redis_keys.usage_day(day, by, name))
        counters = await pipe.execute()
    totals: dict[str, dict[str, float]] = {}
    for (_day, name), row in zip(rows_of, counters, strict=True):
        total = totals.setdefault(name, dict.fromkeys([*COUNTERS, "cost_usd"], 0.0))
        for field, value in row.items():
            if field.decode() in total:
                total[field.decode()] += float(value)
    rows: list[dict[str, object]] = [
        {
            by: name,
            **{field: int(total[field]) for field in COUNTERS},
            "cost_usd": round(total["cost_usd"], 6),
        }
        for name, total in totals.items()
    ]
    return sorted(rows, key=lambda r: (-float(str(r["cost_usd"])), str(r[by])))


def today_utc() -> date:
    return datetime.fromtimestamp(time.time(), UTC).date()


def first_day_kept(retention_days: int) -> date:
    """The oldest day the ledger may still hold: a day's rows expire `retention_days` after
    its last write (`record_usage`)."""
    return today_utc() - timedelta(days=retention_days)
