"""The fleet as shown to people and clients: a FleetSnapshot seen at one instant, with totals.

`GET /v1/fleet` returns it as JSON and `ccfleet status` renders it, so both agree on what
"cooling", "free slots" and "vetted CLI" mean.
"""

from __future__ import annotations

from collections.abc import Collection

from pydantic import BaseModel

from shared.fleet.cli_vetting import VETTED_CLI_VERSIONS, is_vetted
from shared.fleet.headroom import UsageWindow
from shared.fleet.registry import FleetSnapshot, LaneInfo, WorkerInfo


class WorkerView(WorkerInfo):
    cli_vetted: bool
    """The worker's CLI version is one the test suite has passed (shared/fleet/cli_vetting.py)."""


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
    priority: int
    """Its place in the drain order of `fill-first` (lower first)."""
    utilization: float
    """How much of its tightest window it has used (0..1); an API-key account: of its budget."""
    windows: list[UsageWindow]
    """Its usage windows as the upstream last reported them (those not yet reset)."""
    slow: bool
    """Its upstream sent nothing within the first-byte timeout lately."""
    first_byte_timeouts: int
    """Attempts abandoned on it for a silent upstream (the last eight days)."""


class FleetTotals(BaseModel):
    live_workers: int
    slots: int
    busy: int
    free_slots: int
    """Idle slots of ready workers whose account is not cooling: what a new job can use now."""
    unvetted_cli_workers: int
    """Live workers whose CLI version the test suite has not passed (one whose CLI gave no
    version is `broken`, not counted here)."""


class FleetView(BaseModel):
    at_ms: int
    workers: list[WorkerView]
    accounts: list[AccountView]
    lanes: list[LaneInfo]
    totals: FleetTotals


def fleet_view(
    snapshot: FleetSnapshot,
    *,
    now_s: float,
    vetted_cli_versions: Collection[str] = VETTED_CLI_VERSIONS,
) -> FleetView:
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
            priority=a.priority,
            utilization=round(a.utilization(now_s), 4),
            windows=a.headroom.live_windows(now_s),
            slow=a.headroom.slow(now_s),
            first_byte_timeouts=a.headroom.first_byte_timeouts,
        )
        for a in snapshot.accounts
    ]
    cooling = {a.name for a in accounts if a.cooling}
    workers = [
        WorkerView(**w.model_dump(), cli_vetted=is_vetted(w.cli_version, vetted_cli_versions))
        for w in sorted(snapshot.workers, key=lambda w: (w.account, w.id))
    ]
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
        unvetted_cli_workers=sum(bool(w.cli_version) and not w.cli_vetted for w in workers),
    )
    return FleetView(
        at_ms=int(now_s * 1000),
        workers=workers,
        accounts=accounts,
        lanes=snapshot.lanes,
        totals=totals,
    )
