"""The fleet as Redis knows it: live workers (their heartbeats, shared/fleet/liveness.py),
accounts, lanes.

Workers write this state; front ends, `GET /v1/fleet` and `ccfleet status` read it.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel
from redis.asyncio import Redis

from shared.access.ledger import month_of
from shared.broker import redis_keys
from shared.errors import FleetError, Overloaded, RateLimited
from shared.fleet.headroom import Headroom, parse_headroom
from shared.fleet.lanes import LANES, Lane
from shared.fleet.liveness import live_worker_ids

WorkerStateName = Literal["ready", "cooling", "broken", "draining"]


class WorkerInfo(BaseModel):
    """One worker's heartbeat."""

    id: str
    host: str
    account: str
    slots: int
    busy: int
    busy_batch: int = 0
    state: WorkerStateName
    cooling_until: float = 0.0
    cli_version: str = ""
    last_error: str = ""
    broken_reason: str = ""
    """Why the worker's CLI cannot serve (state `broken`)."""
    started_at_ms: int = 0
    beat_at_ms: int = 0
    monthly_usd: float = 0.0  # its account's monthly budget (USD); 0: none
    priority: int = 0  # its account's place in the drain order (lower first)
    ready_clis: int = 0  # CLIs started ahead and waiting for a request
    ready_hits: int = 0  # requests served by a ready CLI since the worker started
    ready_misses: int = 0  # requests that started their CLI cold
    resident_clis: int = 0  # CLIs holding a conversation for its next turn
    resident_bytes: int = 0  # their resident memory (RSS), together
    resident_hits: int = 0  # follow-up turns that continued in a resident CLI
    resident_misses: int = 0  # follow-up turns that replayed their history


class AccountInfo(BaseModel):
    name: str
    workers: int
    slots: int
    busy: int
    cooling_until: float = 0.0
    cooling_reason: str = ""
    month_usd: float = 0.0  # spent this month (UTC), as the CLI reported it
    monthly_usd: float = 0.0  # budget; 0: none
    priority: int = 0  # place in the drain order (lower first): its workers' lowest
    headroom: Headroom = Headroom()

    @property
    def cooling(self) -> bool:
        return self.cooling_until > time.time()

    def utilization(self, now_s: float) -> float:
        """How much of its tightest window the account has used (0..1): its usage windows
        as last reported, or for an account without any (API keys) its month's budget."""
        windows = self.headroom.live_windows(now_s)
        if windows:
            return max(w.utilization for w in windows)
        return self.month_usd / self.monthly_usd if self.monthly_usd else 0.0


class LaneInfo(BaseModel):
    name: Lane
    waiting: int


class FleetSnapshot(BaseModel):
    workers: list[WorkerInfo]
    accounts: list[AccountInfo]
    lanes: list[LaneInfo]

    def available_accounts(self) -> list[AccountInfo]:
        """Accounts with a live worker that is neither cooling nor draining."""
        ready = {w.account for w in self.workers if w.state == "ready"}
        return [a for a in self.accounts if a.name in ready and not a.cooling]

    def earliest_reset(self) -> float | None:
        """When the first cooling account becomes usable again (epoch s), if any cools."""
        resets = [a.cooling_until for a in self.accounts if a.cooling]
        return min(resets) if resets else None


async def read_fleet(redis: Redis, *, heartbeat_ttl_s: float) -> FleetSnapshot:
    worker_ids = await live_worker_ids(redis, heartbeat_ttl_s=heartbeat_ttl_s)
    async with redis.pipeline(transaction=False) as pipe:
        for worker_id in worker_ids:
            pipe.hgetall(redis_keys.worker_heartbeat(worker_id))
        for lane in LANES:
            pipe.zcard(redis_keys.lane_waiting(lane))
        replies = await pipe.execute()
    beats, depths = replies[: len(worker_ids)], replies[len(worker_ids) :]
    workers = [
        WorkerInfo.model_validate({k.decode(): v.decode() for k, v in beat.items()})
        for beat in beats
        if beat
    ]
    return FleetSnapshot(
        workers=workers,
        accounts=await _accounts(redis, workers),
        lanes=[LaneInfo(name=lane, waiting=int(n)) for lane, n in zip(LANES, depths, strict=True)],
    )


async def _accounts(redis: Redis, workers: list[WorkerInfo]) -> list[AccountInfo]:
    names = sorted({w.account for w in workers})
    month = month_of(time.time())
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(redis_keys.account_state(name))
        for name in names:
            pipe.get(redis_keys.month_spend("account", name, month))
        for name in names:
            pipe.hgetall(redis_keys.account_headroom(name))
        replies = await pipe.execute()
    count = len(names)
    states, spends, headrooms = replies[:count], replies[count : 2 * count], replies[2 * count :]
    accounts = []
    for name, state, spend, headroom in zip(names, states, spends, headrooms, strict=True):
        own = [w for w in workers if w.account == name]
        accounts.append(
            AccountInfo(
                name=name,
                workers=len(own),
                slots=sum(w.slots for w in own),
                busy=sum(w.busy for w in own),
                cooling_until=float(state.get(b"cooling_until", 0) or 0),
                cooling_reason=state.get(b"reason", b"").decode(),
                month_usd=float(spend or 0),
                monthly_usd=max(w.monthly_usd for w in own),
                priority=min(w.priority for w in own),
                headroom=parse_headroom(headroom),
            )
        )
    return accounts


async def set_account_cooling(redis: Redis, account: str, *, until_s: float, reason: str) -> None:
    """Every worker of `account` stops taking jobs until `until_s` (epoch seconds)."""
    key = redis_keys.account_state(account)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping={"cooling_until": until_s, "reason": reason})
        pipe.expireat(key, int(until_s) + 1)
        await pipe.execute()


async def account_cooling_until(redis: Redis, account: str) -> float:
    raw: bytes | None = await redis.hget(redis_keys.account_state(account), "cooling_until")  # type: ignore[misc]  # redis-py 5 types hget as sync-or-async
    until = float(raw or 0)
    return until if until > time.time() else 0.0


SHOULD_NOT_RETRY_AFTER_S = 300.0
"""Past this wait, clients are told retrying is pointless (x-should-retry: false)."""


def admission_error(snapshot: FleetSnapshot) -> FleetError | None:
    """Why no live worker can take a new job, now or after a cooldown; None while one can,
    or while none is alive (a job then waits for a worker to start)."""
    return broken_fleet_error(snapshot) or all_cooling_error(snapshot)


BROKEN_RETRY_AFTER_S = 60.0


def broken_fleet_error(snapshot: FleetSnapshot) -> Overloaded | None:
    """529 when workers are alive and none can serve (its CLI is missing or logged out)."""
    if not snapshot.workers or any(w.state != "broken" for w in snapshot.workers):
        return None
    return Overloaded(
        f"No worker of this fleet can serve: {broken_reasons(snapshot)}",
        retry_after_s=BROKEN_RETRY_AFTER_S,
        should_retry=False,  # an operator must act first
    )


def broken_reasons(snapshot: FleetSnapshot) -> str:
    """The distinct reasons of the broken workers, in one line."""
    reasons = sorted({w.broken_reason for w in snapshot.workers if w.state == "broken"})
    return " ".join(reasons)


def all_cooling_error(snapshot: FleetSnapshot) -> RateLimited | None:
    """429 when every account with a live worker that can serve is cooling, naming the
    earliest reset."""
    live = {w.account for w in snapshot.workers if w.state != "broken"}
    accounts = [a for a in snapshot.accounts if a.name in live]
    if not accounts or any(not a.cooling for a in accounts):
        return None
    wait_s = max(1.0, min(a.cooling_until for a in accounts) - time.time())
    return RateLimited(
        "Every Claude account of this fleet has reached its usage limit.",
        retry_after_s=wait_s,
        should_retry=wait_s <= SHOULD_NOT_RETRY_AFTER_S,
    )
