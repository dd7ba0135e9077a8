"""The TTFT histogram behind the dashboard's p50/p99: bins and percentiles, no I/O."""

from __future__ import annotations

import pytest

from shared.telemetry.request_stats import RequestOutcome, bin_middle_ms, percentile_ms, ttft_bin


@pytest.mark.parametrize("ttft_ms", [11.0, 47.3, 100.0, 468.0, 1234.5, 59_000.0, 599_000.0])
def test_a_time_to_first_token_is_reported_within_five_percent(ttft_ms: float) -> None:
    assert bin_middle_ms(ttft_bin(ttft_ms)) == pytest.approx(ttft_ms, rel=0.05)


def test_percentiles_come_from_the_rank_of_the_sample() -> None:
    histogram = [0] * 200
    for ttft_ms in [100.0] * 98 + [5000.0] * 2:
        histogram[ttft_bin(ttft_ms)] += 1
    assert percentile_ms(histogram, 0.50) == pytest.approx(100.0, rel=0.05)
    assert percentile_ms(histogram, 0.99) == pytest.approx(5000.0, rel=0.05)


def test_no_samples_give_no_percentile() -> None:
    assert percentile_ms([0, 0, 0], 0.5) is None


@pytest.mark.parametrize(
    ("status", "failed"), [(200, False), (400, False), (499, False), (429, True), (529, True)]
)
def test_only_what_the_fleet_failed_counts_as_an_error(status: int, failed: bool) -> None:
    assert RequestOutcome(ended_at_s=0.0, status=status).failed is failed
