"""An account's headroom: how much of each usage window it has used, as the upstream says.

With every answer on an OAuth login the CLI prints, before its `result`, a `rate_limit_event`
whose `unifiedWindows` give each window's utilisation (0..1), reset time and status
(docs/measured-facts.md); on an API-key login it prints none (measured, CLI 2.1.332), and an
API-key account's headroom is its monthly budget instead (the ledger's month-to-date spend).
The worker that ran the request records the windows under its account (`record_windows`), so
every replica of the account and every front end read the same figures. A worker whose
upstream stayed silent past the first-byte timeout marks its account slow (`mark_slow`).
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel
from redis.asyncio import Redis

from shared.broker import redis_keys

KEPT_S = 8 * 86_400
"""How long an account's figures are kept after the last report: past the longest window."""
SLOW_FOR_S = 600.0
"""An account counts as slow this long after its last first-byte timeout."""
_WINDOW_FIELD = "window:"


class UsageWindow(BaseModel):
    """One usage window of an account (`five_hour`, `seven_day`, ...)."""

    name: str
    utilization: float
    """Used so far, 0..1."""
    resets_at: float
    """Epoch seconds when the window starts afresh."""
    status: str
    """allowed | allowed_warning | rejected, as the upstream said it."""


class Headroom(BaseModel):
    """What Redis holds about one account's use of its windows and the speed of its upstream."""

    windows: list[UsageWindow] = []
    first_byte_timeouts: int = 0
    slow_at: float = 0.0
    """Epoch seconds of the last first-byte timeout; 0: none."""

    def live_windows(self, now_s: float) -> list[UsageWindow]:
        """The windows that have not reset since they were reported."""
        return [w for w in self.windows if w.resets_at > now_s]

    def slow(self, now_s: float) -> bool:
        return now_s - self.slow_at < SLOW_FOR_S


def windows_of(rate_limit_info: dict[str, Any]) -> list[UsageWindow]:
    """The windows of a `rate_limit_event`'s `rate_limit_info`; [] if it names none."""
    unified = rate_limit_info.get("unifiedWindows")
    if not isinstance(unified, dict):
        return []
    windows = []
    for name, raw in sorted(unified.items()):
        if not isinstance(raw, dict):
            continue
        utilization, resets_at = raw.get("utilization"), raw.get("resetsAt")
        if isinstance(utilization, int | float) and isinstance(resets_at, int | float):
            status = str(raw.get("status") or "")
            windows.append(
                UsageWindow(name=name, utilization=utilization, resets_at=resets_at, status=status)
            )
    return windows


async def record_windows(redis: Redis, account: str, windows: list[UsageWindow]) -> None:
    """Keep the account's windows as last reported (each replaces its earlier report)."""
    if not windows:
        return
    key = redis_keys.account_headroom(account)
    fields = {f"{_WINDOW_FIELD}{w.name}": w.model_dump_json() for w in windows}
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping=fields)
        pipe.expire(key, KEPT_S)
        await pipe.execute()


async def mark_slow(redis: Redis, account: str, *, now_s: float) -> None:
    """The account's upstream sent nothing within the first-byte timeout."""
    key = redis_keys.account_headroom(account)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hincrby(key, "first_byte_timeouts", 1)
        pipe.hset(key, "slow_at", str(now_s))
        pipe.expire(key, KEPT_S)
        await pipe.execute()


def parse_headroom(raw: dict[bytes, bytes]) -> Headroom:
    """A Headroom from the account's hash as `HGETALL` returns it."""
    windows = [
        UsageWindow.model_validate(orjson.loads(value))
        for name, value in raw.items()
        if name.decode().startswith(_WINDOW_FIELD)
    ]
    return Headroom(
        windows=sorted(windows, key=lambda w: w.name),
        first_byte_timeouts=int(raw.get(b"first_byte_timeouts", 0) or 0),
        slow_at=float(raw.get(b"slow_at", 0) or 0),
    )
