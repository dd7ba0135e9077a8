"""What the dashboard shows, assembled from small independent sources.

`assemble_dashboard` reads each source once and puts the answers side by side: the fleet
(workers, accounts with their month-to-date spend, lanes: shared/fleet/registry.py), how long each
lane's oldest job has waited, the request figures every front end rolls up
(shared/telemetry/request_stats.py), and batches in progress (shared/batches/store.py).
A source is one function of Redis and the time; a new one is a field here and a line in
`assemble_dashboard`.
"""

from __future__ import annotations

from pydantic import BaseModel
from redis.asyncio import Redis

from shared.batches.store import BatchStore
from shared.broker import redis_keys
from shared.fleet.lanes import LANES
from shared.fleet.registry import read_fleet
from shared.fleet.view import AccountView, FleetTotals, WorkerView, fleet_view
from shared.telemetry.request_stats import RequestStats, read_request_stats


class LaneRow(BaseModel):
    name: str
    waiting: int
    oldest_wait_s: float
    """How long the job that has waited longest has been waiting; 0 when none waits."""


class BatchProgress(BaseModel):
    id: str
    status: str
    total: int
    done: int
    succeeded: int
    errored: int


class DashboardView(BaseModel):
    at_ms: int
    workers: list[WorkerView]
    accounts: list[AccountView]
    lanes: list[LaneRow]
    totals: FleetTotals
    requests: list[RequestStats]
    batches: list[BatchProgress]


async def assemble_dashboard(
    redis: Redis, *, heartbeat_ttl_s: float, now_s: float
) -> DashboardView:
    fleet = fleet_view(await read_fleet(redis, heartbeat_ttl_s=heartbeat_ttl_s), now_s=now_s)
    waits = await lane_oldest_waits(redis, now_s=now_s)
    return DashboardView(
        at_ms=fleet.at_ms,
        workers=fleet.workers,
        accounts=fleet.accounts,
        lanes=[
            LaneRow(name=lane.name, waiting=lane.waiting, oldest_wait_s=waits[lane.name])
            for lane in fleet.lanes
        ],
        totals=fleet.totals,
        requests=await read_request_stats(redis, now_s=now_s),
        batches=await batches_in_progress(redis),
    )


async def lane_oldest_waits(redis: Redis, *, now_s: float) -> dict[str, float]:
    """Per lane, seconds since its oldest waiting job was queued (lanes are scored by it)."""
    async with redis.pipeline(transaction=False) as pipe:
        for lane in LANES:
            pipe.zrange(redis_keys.lane_waiting(lane), 0, 0, withscores=True)
        replies = await pipe.execute()
    return {
        lane: max(0.0, now_s - oldest[0][1] / 1000) if oldest else 0.0
        for lane, oldest in zip(LANES, replies, strict=True)
    }


MAX_BATCHES_SHOWN = 20


async def batches_in_progress(redis: Redis) -> list[BatchProgress]:
    """Message Batches not yet ended, the first to expire first (at most MAX_BATCHES_SHOWN)."""
    store = BatchStore(redis, retention_s=0)  # reads only: retention matters to writes
    shown = []
    for batch_id in (await store.open_batch_ids())[:MAX_BATCHES_SHOWN]:
        state = await store.get(batch_id)
        if state is not None:
            shown.append(
                BatchProgress(
                    id=state.id,
                    status=state.status,
                    total=state.count,
                    done=state.count - state.processing,
                    succeeded=state.counts["succeeded"],
                    errored=state.counts["errored"],
                )
            )
    return shown
