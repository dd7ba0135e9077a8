"""Benchmarks report each figure as the median of repeated runs with its range
(bench/spread.py)."""

from __future__ import annotations

import math

from bench.spread import DASH, Figures, Spread, percentile


def test_a_percentile_is_a_value_that_was_measured() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 0.5) == 50.0
    assert percentile([3.0, 1.0, 2.0], 0.99) == 3.0
    assert math.isnan(percentile([], 0.5))


def test_a_spread_is_the_median_with_the_lowest_and_highest_run() -> None:
    spread = Spread.of([43.0, 137.0, 54.5, 88.1, 45.8])
    assert (spread.median, spread.low, spread.high, spread.runs) == (54.5, 43.0, 137.0, 5)
    assert spread.format(1, "ms") == f"54.5 ms (43.0{DASH}137.0)"


def test_a_run_that_measured_nothing_is_left_out_and_one_run_has_no_range() -> None:
    spread = Spread.of([math.nan, 8.9])
    assert spread.runs == 1
    assert spread.format(1, "ms") == "8.9 ms"


def test_figures_become_one_table_row_each_in_the_order_first_added() -> None:
    figures = Figures()
    for p99, cpu in [(45.8, 41.0), (88.1, 40.0), (42.8, 44.0)]:
        figures.add("delivery p99", p99, target="≤ 50 ms")
        figures.add("front end CPU", cpu, unit="% of a core", digits=0)
    rows = figures.table()
    assert rows[2] == f"| delivery p99 | 45.8 ms (42.8{DASH}88.1) | 3 | ≤ 50 ms |"
    assert rows[3] == f"| front end CPU | 41 % of a core (40{DASH}44) | 3 |  |"
