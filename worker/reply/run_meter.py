"""What one CLI run used: tokens by kind and cost, read from the lines the CLI prints.

The run's `result` line carries the upstream's usage and `total_cost_usd`, the cost the CLI
prices with its own table (measured with CLI 2.1.328: claude-sonnet-4-5 at 3 / 15 / 0.30 /
3.75 USD per million input / output / cache-read / cache-write tokens). A run stopped before
its `result` (a stop sequence, a cancellation) is metered from its stream events, without a
cost. Its `rate_limit_event` (OAuth logins) tells how much of each usage window the account
has used (shared/fleet/headroom.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from shared.access.ledger import Usage
from shared.fleet.headroom import UsageWindow, windows_of


@dataclass
class RunMeter:
    spawned_at: float = field(default_factory=time.monotonic)
    handed_off_at: float = 0.0
    """Epoch seconds when the CLI was given the request (its first set-up line)."""
    cli_start_s: float | None = None
    """Spawn to the CLI's first output line."""
    streamed: Usage = field(default_factory=Usage)
    reported: Usage | None = None
    windows: list[UsageWindow] = field(default_factory=list)
    """The account's usage windows as the run's last `rate_limit_event` reported them."""

    @property
    def usage(self) -> Usage:
        return self.reported or self.streamed

    def observe(self, message: dict[str, Any]) -> None:
        if self.cli_start_s is None:
            self.cli_start_s = time.monotonic() - self.spawned_at
        kind = message.get("type")
        if kind == "stream_event":
            self._observe_event(message.get("event") or {})
        elif kind == "result" and message.get("num_turns") != 0:  # 0: a replayed turn's ack
            self.reported = _usage(message.get("usage") or {})
            self.reported.cost_usd = float(message.get("total_cost_usd") or 0.0)
        elif kind == "rate_limit_event":
            self.windows = windows_of(message.get("rate_limit_info") or {}) or self.windows

    def _observe_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "message_start":
            self.streamed = _usage((event.get("message") or {}).get("usage") or {})
        elif event.get("type") == "message_delta":
            usage = event.get("usage") or {}  # cumulative
            if isinstance(usage.get("output_tokens"), int):
                self.streamed.output_tokens = usage["output_tokens"]


def _usage(raw: dict[str, Any]) -> Usage:
    def count(name: str) -> int:
        value = raw.get(name)
        return value if isinstance(value, int) else 0

    return Usage(
        input_tokens=count("input_tokens"),
        output_tokens=count("output_tokens"),
        cache_read_tokens=count("cache_read_input_tokens"),
        cache_write_tokens=count("cache_creation_input_tokens"),
    )
