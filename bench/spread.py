"""Figures measured over repeated runs, reported as their median and range.

One run on a good minute tells an operator nothing about the next: every benchmark repeats
its measurement and reports, for each figure, the median of its runs with the lowest and
highest, under a heading that says when, on how many cores and at what load it was taken.

    figures = Figures()
    for _ in range(runs):
        figures.add("delivery p99", p99_ms, unit="ms", target="<= 50 ms")
    print(machine_line()); figures.print()
    figures.save(path)  # bench/perf.py gathers the parts' figures into one table
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

DASH = "\u2013"  # an en dash, as the docs write ranges (ruff flags the character itself)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (`q` in 0..1): a value that was measured, never interpolated."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float
    runs: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        kept = [v for v in values if not math.isnan(v)]
        if not kept:
            return cls(math.nan, math.nan, math.nan, 0)
        return cls(statistics.median(kept), min(kept), max(kept), len(kept))

    def format(self, digits: int = 1, unit: str = "") -> str:
        """`8.9 ms (5.1 to 12.0)`, the range with an en dash; one run has no range."""
        suffix = f" {unit}" if unit else ""
        median = f"{self.median:.{digits}f}{suffix}"
        if self.runs < 2:
            return median
        return f"{median} ({self.low:.{digits}f}{DASH}{self.high:.{digits}f})"


@dataclass
class Figure:
    label: str
    unit: str
    target: str
    digits: int
    values: list[float] = field(default_factory=list)

    @property
    def spread(self) -> Spread:
        return Spread.of(self.values)


class Figures:
    """Named figures, one value per run each, in the order first added."""

    def __init__(self, figures: Sequence[Figure] = ()) -> None:
        self._figures = {figure.label: figure for figure in figures}

    def add(
        self, label: str, value: float, *, unit: str = "ms", target: str = "", digits: int = 1
    ) -> None:
        figure = self._figures.setdefault(label, Figure(label, unit, target, digits))
        figure.values.append(value)

    def __iter__(self) -> Iterator[Figure]:
        return iter(self._figures.values())

    def table(self) -> list[str]:
        """Markdown rows: figure, median (min to max) over the runs, target."""
        rows = [f"| figure | median (min{DASH}max) | runs | target |", "|---|---|---|---|"]
        for figure in self._figures.values():
            spread = figure.spread
            rows.append(
                f"| {figure.label} | {spread.format(figure.digits, figure.unit)} "
                f"| {spread.runs} | {figure.target} |"
            )
        return rows

    def print(self) -> None:
        print("\n".join(self.table()), flush=True)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps([asdict(f) for f in self._figures.values()]))

    @classmethod
    def load(cls, path: Path) -> Figures:
        return cls([Figure(**raw) for raw in json.loads(path.read_text())])

    def extend(self, other: Figures) -> None:
        for figure in other._figures.values():
            self._figures[figure.label] = figure


def machine_line() -> str:
    """When, on how many cores, and how loaded the machine was as the measurement started."""
    one, five, fifteen = os.getloadavg()
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
        f"load average {one:.2f} {five:.2f} {fifteen:.2f} at the start"
    )
