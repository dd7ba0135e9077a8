"""Prometheus metrics, one registry per process (front end or worker), never the global one.

Both kinds of process expose every name; each fills the ones it sees: front ends count
requests, their duration and the time to the first token, and read the fleet's gauges
(queue depth, workers by state, accounts cooling) from Redis at each scrape; workers record
queue waits, CLI start times, tokens and cost. Keys are labelled by name, never by secret.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from shared.fleet.lanes import LANES
from shared.fleet.registry import FleetSnapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class FleetMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "ccfleet_requests", "HTTP requests answered.", ["route", "status", "lane", "key"],
            registry=r,
        )  # fmt: skip
        self.time_to_first_token = Histogram(
            "ccfleet_time_to_first_token_seconds",
            "Request received to the first token relayed (shared/telemetry/first_token.py).",
            ["lane"],
            buckets=_SECONDS,
            registry=r,
        )
        self.request_duration = Histogram(
            "ccfleet_request_duration_seconds",
            "Request received to response ended.",
            ["route"],
            buckets=_SECONDS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "ccfleet_queue_wait_seconds",
            "Submission to a worker starting the attempt.",
            ["lane"],
            buckets=_SECONDS,
            registry=r,
        )
        self.tokens = Counter(
            "ccfleet_tokens", "Tokens the upstream reported, by type.", ["type", "key"], registry=r
        )
        self.cost_usd = Counter(
            "ccfleet_cost_usd", "Cost the CLI reported (total_cost_usd).", ["account"], registry=r
        )
        self.queue_depth = Gauge(
            "ccfleet_queue_depth", "Jobs waiting for a worker.", ["lane"], registry=r
        )
        self.workers = Gauge("ccfleet_workers", "Live workers by state.", ["state"], registry=r)
        self.account_cooling = Gauge(
            "ccfleet_account_cooling", "1 while an account cools.", ["account"], registry=r
        )
        self.account_utilization = Gauge(
            "ccfleet_account_utilization",
            "Share of a usage window an account has used (0..1), as the upstream last said.",
            ["account", "window"],
            registry=r,
        )
        self.account_first_byte_timeouts = Gauge(
            "ccfleet_account_first_byte_timeouts",
            "Attempts abandoned because the account's upstream sent nothing in time.",
            ["account"],
            registry=r,
        )
        self.cli_start = Histogram(
            "ccfleet_cli_start_seconds",
            "CLI spawn to its first output line.",
            buckets=_SECONDS,
            registry=r,
        )

    def observe_fleet(self, snapshot: FleetSnapshot) -> None:
        """Set the fleet gauges from a snapshot (accounts no longer seen disappear)."""
        for lane in snapshot.lanes:
            self.queue_depth.labels(lane=lane.name).set(lane.waiting)
        for lane_name in LANES:
            self.queue_depth.labels(lane=lane_name)  # present even before a lane is seen
        for state in ("ready", "cooling", "draining"):
            count = sum(1 for w in snapshot.workers if w.state == state)
            self.workers.labels(state=state).set(count)
        self.account_cooling.clear()
        self.account_utilization.clear()
        self.account_first_byte_timeouts.clear()
        now_s = time.time()
        for account in snapshot.accounts:
            self.account_cooling.labels(account=account.name).set(int(account.cooling))
            for window in account.headroom.live_windows(now_s):
                labels = {"account": account.name, "window": window.name}
                self.account_utilization.labels(**labels).set(window.utilization)
            timeouts = account.headroom.first_byte_timeouts
            self.account_first_byte_timeouts.labels(account=account.name).set(timeouts)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
