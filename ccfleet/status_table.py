"""`ccfleet status` as rich renderables: a pure function of a FleetSnapshot and the time.

Values from Redis go into Text objects, never markup strings, so a worker's last error
cannot restyle the table.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, tzinfo

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from shared.fleet.cli_vetting import VETTED_CLI_VERSIONS
from shared.fleet.registry import FleetSnapshot
from shared.fleet.view import AccountView, FleetView, WorkerView, fleet_view

ERROR_WIDTH = 40
STATE_STYLES = {"ready": "green", "cooling": "yellow", "draining": "magenta", "broken": "red"}


def render_fleet(
    snapshot: FleetSnapshot,
    *,
    now_s: float,
    tz: tzinfo | None = None,
    vetted_cli_versions: Collection[str] = VETTED_CLI_VERSIONS,
) -> Group:
    """The workers table, the accounts table and the lanes line; times in `tz` (None: local)."""
    view = fleet_view(snapshot, now_s=now_s, vetted_cli_versions=vetted_cli_versions)
    totals = view.totals
    plural = "" if totals.live_workers == 1 else "s"
    summary = Text(
        f"{totals.live_workers} live worker{plural}, "
        f"{totals.free_slots} of {totals.slots} slots free",
        style="bold",
    )
    parts: list[RenderableType] = [summary]
    if totals.unvetted_cli_workers:
        parts.append(_unvetted_line(view))
    if view.workers:
        parts += [_workers_table(view, now_s, tz), _accounts_table(view, now_s, tz)]
        parts += [
            Text(f"{w.id} cannot serve: {w.broken_reason}", style="red")
            for w in view.workers
            if w.state == "broken"
        ]
    else:
        parts.append(Text("No live workers.", style="red"))
    parts.append(_lanes_line(view))
    return Group(*parts)


def _workers_table(view: FleetView, now_s: float, tz: tzinfo | None) -> Table:
    table = Table(title="Workers", title_justify="left", expand=False)
    table.add_column("host", overflow="fold", max_width=32)
    table.add_column("worker", overflow="fold", max_width=24)
    for column in ("account", "state", "busy", "cooling until", "CLI"):
        table.add_column(column, no_wrap=True, min_width=len(column))
    table.add_column("last error")  # the column that narrows first; its cells stay one line
    for w in view.workers:
        busy = f"{w.busy}/{w.slots}" + (f" ({w.busy_batch} batch)" if w.busy_batch else "")
        table.add_row(
            Text(w.host),
            Text(w.id.removeprefix(f"{w.host}-")),  # ids are host-pid-random
            Text(w.account),
            Text(w.state, style=STATE_STYLES.get(w.state, "")),
            Text(busy),
            Text(until_text(w.cooling_until, now_s, tz)),
            _cli_cell(w),
            Text(
                truncated(w.last_error, ERROR_WIDTH), style="red", no_wrap=True, overflow="ellipsis"
            ),
        )
    return table


def _cli_cell(worker: WorkerView) -> Text:
    if worker.cli_vetted or not worker.cli_version:  # no version: shown as broken
        return Text(worker.cli_version)
    return Text(f"{worker.cli_version} (not vetted)", style="yellow")


def _unvetted_line(view: FleetView) -> Text:
    versions = sorted({w.cli_version for w in view.workers if w.cli_version and not w.cli_vetted})
    count = view.totals.unvetted_cli_workers
    return Text(
        f"{count} worker{'' if count == 1 else 's'} on a CLI version the test suite has not "
        f"passed: {', '.join(versions)} (vet it: CCFLEET_CLAUDE_CODE_VERSION=X bash tests/run.sh)",
        style="yellow",
    )


def _accounts_table(view: FleetView, now_s: float, tz: tzinfo | None) -> Table:
    table = Table(title="Accounts", title_justify="left", expand=False)
    columns = ("account", "prio", "workers", "busy", "state", "used", "month $", "cooling until")
    for column in (*columns, "reason"):
        table.add_column(column, no_wrap=column not in ("used", "reason"))
    ready = {w.account for w in view.workers if w.state == "ready"}
    serving = {w.account for w in view.workers if w.state != "broken"}
    for a in view.accounts:
        state = _account_state(a, ready) if a.name in serving else "broken"
        table.add_row(
            Text(a.name),
            Text(str(a.priority)),
            Text(str(a.workers)),
            Text(f"{a.busy}/{a.slots}"),
            Text(state, style=STATE_STYLES.get(state, "red")),
            Text(headroom_text(a, now_s, tz)),
            Text(spend_text(a)),
            Text(until_text(a.cooling_until, now_s, tz)),
            Text(truncated(a.reason, ERROR_WIDTH)),
        )
    return table


def spend_text(account: AccountView) -> str:
    """`12.34` spent this month, or `12.34 / 50.00` against a budget."""
    spent = f"{account.month_usd:.2f}"
    return f"{spent} / {account.monthly_usd:.2f}" if account.monthly_usd else spent


def headroom_text(account: AccountView, now_s: float, tz: tzinfo | None) -> str:
    """Each usage window's share used and its reset (`five_hour 87% until 14:05 (in 2h13m)`),
    and `slow` after a first-byte timeout."""
    parts = [
        f"{w.name} {w.utilization:.0%} until {until_text(w.resets_at, now_s, tz)}"
        for w in account.windows
    ]
    if account.slow:
        parts.append("slow")
    return " · ".join(parts)


def _account_state(account: AccountView, ready_accounts: set[str]) -> str:
    if account.cooling:
        return "cooling"
    return "ready" if account.name in ready_accounts else "no ready worker"


def _lanes_line(view: FleetView) -> Text:
    depths = " · ".join(f"{lane.name} {lane.waiting} waiting" for lane in view.lanes)
    return Text(f"Lanes: {depths}")


def until_text(until_s: float, now_s: float, tz: tzinfo | None) -> str:
    """`14:05 (in 2h13m)`, with the date when it is not today; empty when already past."""
    if until_s <= now_s:
        return ""
    when = datetime.fromtimestamp(until_s, tz)
    today = datetime.fromtimestamp(now_s, tz).date()
    clock = when.strftime("%H:%M" if when.date() == today else "%b %d %H:%M")
    return f"{clock} (in {duration_text(until_s - now_s)})"


def duration_text(seconds: float) -> str:
    """45s, 13m05s, 2h13m, 3d04h."""
    total = int(seconds)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def truncated(text: str, width: int) -> str:
    """One line of at most `width` characters, ending in … when cut."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"
