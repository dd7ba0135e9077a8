"""`ccfleet status` rendering: FleetSnapshot -> text, as a terminal 120 columns wide shows it."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

import pytest
from rich.console import Console

from ccfleet.status_table import duration_text, render_fleet, truncated, until_text
from shared.fleet.headroom import Headroom, UsageWindow
from shared.fleet.registry import AccountInfo, FleetSnapshot, LaneInfo, WorkerInfo
from shared.fleet.view import fleet_view

NOW_S = datetime(2026, 11, 21, 12, 0, tzinfo=UTC).timestamp()


def worker(id: str, account: str, **fields: object) -> WorkerInfo:
    defaults: dict[str, object] = {
        "host": "host-a",
        "slots": 2,
        "busy": 0,
        "state": "ready",
        "cli_version": "2.1.328",
    }
    return WorkerInfo.model_validate({"id": id, "account": account, **defaults, **fields})


def snapshot(workers: list[WorkerInfo], accounts: list[AccountInfo]) -> FleetSnapshot:
    lanes = [LaneInfo(name="interactive", waiting=3), LaneInfo(name="batch", waiting=41)]
    return FleetSnapshot(workers=workers, accounts=accounts, lanes=lanes)


def rendered(fleet: FleetSnapshot) -> str:
    console = Console(file=StringIO(), width=120, record=True)
    console.print(render_fleet(fleet, now_s=NOW_S, tz=UTC))
    return console.export_text()


def row_of(text: str, cell: str, *, table: str = "Workers") -> str:
    """The first line of `table` (a title) with a cell reading `cell`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(table))
    return next(line for line in lines[start:] if f"│ {cell} " in line)


def test_a_cooling_account_shows_its_reset_time_and_reason() -> None:
    reset_s = NOW_S + 2 * 3600 + 13 * 60
    text = rendered(
        snapshot(
            [worker("w-alice", "alice"), worker("w-bob", "bob", busy=1)],
            [
                AccountInfo(name="alice", workers=1, slots=2, busy=0),
                AccountInfo(
                    name="bob",
                    workers=1,
                    slots=2,
                    busy=1,
                    cooling_until=reset_s,
                    cooling_reason="5-hour limit",
                ),
            ],
        )
    )
    bob = row_of(text, "bob", table="Accounts")
    assert "cooling" in bob
    assert "14:13 (in 2h13m)" in bob
    assert "5-hour limit" in bob
    assert "ready" in row_of(text, "alice", table="Accounts")
    assert "2 live workers, 2 of 4 slots free" in text  # bob's free slot is not usable


def test_a_draining_worker_and_its_last_error_are_shown() -> None:
    error = "upstream said: 529 overloaded, and a great deal more detail than fits in a cell"
    text = rendered(
        snapshot(
            [worker("w-1", "alice", state="draining", busy=1, last_error=error)],
            [AccountInfo(name="alice", workers=1, slots=2, busy=1)],
        )
    )
    row = row_of(text, "w-1")
    assert "draining" in row
    assert "1/2" in row
    assert "upstream said: 529 overloaded" in row
    assert row.rstrip("│ ").endswith("…")
    assert "fits in a cell" not in text
    assert "no ready worker" in row_of(text, "alice", table="Accounts")
    assert "0 of 2 slots free" in text


def test_lane_depths_are_shown() -> None:
    text = rendered(
        snapshot([worker("w-1", "alice")], [AccountInfo(name="alice", workers=1, slots=2, busy=0)])
    )
    assert "Lanes: interactive 3 waiting · batch 41 waiting" in text


def test_an_empty_fleet_says_so() -> None:
    text = rendered(snapshot([], []))
    assert "0 live workers" in text
    assert "No live workers." in text


def test_text_from_redis_is_not_read_as_markup() -> None:
    text = rendered(
        snapshot(
            [worker("w-1", "alice", last_error="[red]boom[/red]")],
            [AccountInfo(name="alice", workers=1, slots=2, busy=0)],
        )
    )
    assert "[red]boom[/red]" in text


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(45.9, "45s"), (785, "13m05s"), (7980, "2h13m"), (3 * 86400 + 4 * 3600, "3d04h")],
)  # fmt: skip
def test_durations_read_like_a_clock(seconds: float, expected: str) -> None:
    assert duration_text(seconds) == expected


def test_a_reset_on_another_day_shows_the_date_and_a_past_one_nothing() -> None:
    assert until_text(NOW_S + 86400, NOW_S, UTC) == "Nov 22 12:00 (in 1d00h)"
    assert until_text(NOW_S - 1, NOW_S, UTC) == ""


def test_truncation_keeps_one_line_within_the_width() -> None:
    assert truncated("a\nb", 10) == "a b"
    assert truncated("abcdefghijkl", 5) == "abcd…"


def test_free_slots_count_only_ready_workers_of_accounts_not_cooling() -> None:
    fleet = snapshot(
        [
            worker("w-1", "alice", busy=1),
            worker("w-2", "alice", state="draining"),
            worker("w-3", "bob"),
            worker("w-4", "carol", state="cooling", cooling_until=NOW_S + 60),
        ],
        [
            AccountInfo(name="alice", workers=2, slots=4, busy=1),
            AccountInfo(name="bob", workers=1, slots=2, busy=0, cooling_until=NOW_S + 60),
            AccountInfo(name="carol", workers=1, slots=2, busy=0),
        ],
    )
    totals = fleet_view(fleet, now_s=NOW_S).totals
    assert (totals.live_workers, totals.slots, totals.busy, totals.free_slots) == (4, 8, 1, 1)


def test_an_account_shows_its_month_to_date_spend_against_its_budget() -> None:
    text = rendered(
        snapshot(
            [worker("w-1", "alice"), worker("w-2", "bob")],
            [
                AccountInfo(name="alice", workers=1, slots=2, busy=0, month_usd=12.345),
                AccountInfo(
                    name="bob", workers=1, slots=2, busy=0, month_usd=50.0, monthly_usd=50.0
                ),
            ],
        )
    )
    assert "12.35" in row_of(text, "alice", table="Accounts")
    assert "50.00 / 50.00" in row_of(text, "bob", table="Accounts")


def test_a_broken_worker_shows_as_broken_with_its_whole_reason() -> None:
    reason = "The Claude Code CLI /opt/claude/bin/claude cannot start: No such file or directory."
    text = rendered(
        snapshot(
            [
                worker("w-alice", "alice", state="broken", broken_reason=reason, cli_version=""),
                worker("w-bob", "bob"),
            ],
            [
                AccountInfo(name="alice", workers=1, slots=2, busy=0),
                AccountInfo(name="bob", workers=1, slots=2, busy=0),
            ],
        )
    )
    assert "│ broken " in row_of(text, "alice")
    assert "│ broken " in row_of(text, "alice", table="Accounts")
    assert "│ ready " in row_of(text, "bob", table="Accounts")
    assert f"w-alice cannot serve: {reason}" in " ".join(text.split())
    assert "2 of 4 slots free" in text
    assert "not vetted" not in text, "a CLI without a version is broken, not unvetted"


def test_a_worker_on_a_cli_version_the_suite_has_not_passed_is_flagged() -> None:
    text = rendered(
        snapshot(
            [worker("w-old", "alice"), worker("w-new", "alice", cli_version="9.9.9")],
            [AccountInfo(name="alice", workers=2, slots=4, busy=0)],
        )
    )
    assert "9.9.9 (not vetted)" in row_of(text, "w-new")
    assert "not vetted" not in row_of(text, "w-old")
    assert "1 worker on a CLI version the test suite has not passed: 9.9.9" in text


def test_a_fleet_on_vetted_cli_versions_shows_no_warning() -> None:
    text = rendered(
        snapshot([worker("w-1", "alice")], [AccountInfo(name="alice", workers=1, slots=2, busy=0)])
    )
    assert "not vetted" not in text
    assert "has not passed" not in text


def test_the_fleet_view_marks_each_worker_cli_as_vetted_or_not() -> None:
    fleet = snapshot(
        [
            worker("w-1", "alice"),
            worker("w-2", "alice", cli_version="2.1.999"),
            worker("w-3", "bob", cli_version="unavailable (No such file or directory)"),
        ],
        [AccountInfo(name="alice", workers=2, slots=4, busy=0)],
    )
    view = fleet_view(fleet, now_s=NOW_S, vetted_cli_versions={"2.1.328"})
    assert {w.id: w.cli_vetted for w in view.workers} == {"w-1": True, "w-2": False, "w-3": False}
    assert view.totals.unvetted_cli_workers == 2


def test_an_account_shows_each_usage_window_with_its_reset_and_its_drain_order() -> None:
    windows = [
        UsageWindow(name="five_hour", utilization=0.87, resets_at=NOW_S + 7980, status="allowed"),
        UsageWindow(name="seven_day", utilization=0.42, resets_at=NOW_S - 1, status="allowed"),
    ]
    alice = AccountInfo(
        name="alice", workers=1, slots=2, busy=0, priority=3, headroom=Headroom(windows=windows)
    )
    text = rendered(snapshot([worker("w-1", "alice")], [alice]))
    row = row_of(text, "alice", table="Accounts")
    assert "five_hour 87% until 14:13 (in 2h13m)" in row
    assert "│ 3 " in row
    assert "seven_day" not in text, "a window that has reset is not shown"
    view = fleet_view(snapshot([worker("w-1", "alice")], [alice]), now_s=NOW_S)
    assert view.accounts[0].utilization == 0.87
