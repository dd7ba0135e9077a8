"""The fleet as shown to people and clients: a FleetSnapshot seen at one instant, with totals.

`GET /v1/fleet` returns it as JSON and `ccfleet status` renders it, so both agree on what
"cooling" and "free slots" mean.
"""

from __future__ import annotations

from pydantic import BaseModel

from shared.fleet import FleetSnapshot, LaneInfo, WorkerInfo


class AccountView(BaseModel):
    name: str
    workers: int
    slots: int
    busy: int
    cooling: bool
    cooling_until: float
    """Epoch seconds when the account's cooldown ends; 0 when it is not cooling."""
    reason: str
    month_usd: float
    """Spent this month (UTC) as the CLI reported it (total_cost_usd)."""
    monthly_usd: float
    """The account's monthly budget; 0: none."""


class FleetTotals(BaseModel):
    live_workers: int
    slots: int
    busy: int
    free_slots: int
    """Idle slots of ready workers whose account is not cooling: what a new job can use now."""


class FleetView(BaseModel):
    at_ms: int
    workers: list[WorkerInfo]
    accounts: list[AccountView]
    lanes: list[LaneInfo]
    totals: FleetTotals


def fleet_view(snapshot: FleetSnapshot, *, now_s: float) -> FleetView:
    accounts = [
        AccountView(
            name=a.name,
            workers=a.workers,
            slots=a.slots,
            busy=a.busy,
            cooling=a.cooling_until > now_s,
            cooling_until=a.cooling_until if a.cooling_until > now_s else 0.0,
            reason=a.cooling_reason if a.cooling_until > now_s else "",
            month_usd=round(a.month_usd, 6),
            monthly_usd=a.monthly_usd,
        )
        for a in snapshot.accounts
    ]
    cooling = {a.name for a in accounts if a.cooling}
    workers = sorted(snapshot.workers, key=lambda w: (w.account, w.id))
    usable = [
        w
        for w in workers
        if w.state == "ready" and w.account not in cooling and w.cooling_until <= now_s
    ]
    totals = FleetTotals(
        live_workers=len(workers),
        slots=sum(w.slots for w in workers),
        busy=sum(w.busy for w in workers),
        free_slots=sum(max(0, w.slots - w.busy) for w in usable),
    )
    return FleetView(
        at_ms=int(now_s * 1000),
        workers=workers,
        accounts=accounts,
        lanes=snapshot.lanes,
        totals=totals,
    )
