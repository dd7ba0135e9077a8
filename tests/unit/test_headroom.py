"""An account's usage windows from the CLI's `rate_limit_event` (shared/fleet/headroom.py)."""

from __future__ import annotations

from shared.fleet.headroom import UsageWindow, windows_of

# As the pinned CLI printed it on an OAuth login (docs/measured-facts.md).
MEASURED = {
    "status": "allowed_warning",
    "resetsAt": 1797239148,
    "rateLimitType": "seven_day",
    "utilization": 0.42,
    "isUsingOverage": False,
    "unifiedWindows": {
        "five_hour": {"utilization": 0.87, "resetsAt": 1796637948, "status": "allowed_warning"},
        "seven_day": {"utilization": 0.42, "resetsAt": 1797239148, "status": "allowed"},
    },
}


def test_each_unified_window_becomes_a_usage_window() -> None:
    assert windows_of(MEASURED) == [
        UsageWindow(
            name="five_hour", utilization=0.87, resets_at=1796637948, status="allowed_warning"
        ),
        UsageWindow(name="seven_day", utilization=0.42, resets_at=1797239148, status="allowed"),
    ]


def test_an_event_without_windows_or_with_malformed_ones_gives_none() -> None:
    assert windows_of({"status": "rejected", "resetsAt": 1}) == []
    assert windows_of({"unifiedWindows": {"five_hour": {"utilization": "high"}, "x": 3}}) == []
