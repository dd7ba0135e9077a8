"""Lanes: the two kinds of work a fleet queues, and each lane's limits (`LanePolicy`).

Interactive requests are answered while a client waits; batch requests (the Message Batches
API, or `x-ccfleet-lane: batch`) may wait for hours. Both share one queue, but each lane has
its own bound on waiting jobs, its own longest wait for a worker, its own place in the queue's
order and its own share of a worker's slots. Which of these applies to a lane is decided here
and nowhere else: front ends, workers and the queue ask `lane_policies(settings)[lane]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.settings import Settings

Lane = Literal["interactive", "batch"]
LANES: tuple[Lane, ...] = ("interactive", "batch")

INTERACTIVE_HEAD_START_MS = 6 * 3600 * 1000
"""Interactive jobs are scored this far in the past, so every waiting interactive job comes
before any batch job (docs/measured-facts.md §5): batch work never delays a waiting client."""


@dataclass(frozen=True)
class LanePolicy:
    """One lane's limits."""

    max_waiting: int
    """Jobs that may wait in the lane; one more is refused (529)."""
    max_wait_s: float
    """Longest a job waits for a worker before it is cancelled (529)."""
    head_start_ms: int
    """How far in the past the lane's jobs are scored in the queue: the larger, the sooner."""
    reserved_slots: int
    """Slots of every worker this lane may not take (they are kept for the other lane)."""

    def slots_on(self, worker_slots: int) -> int:
        """How many of a worker's `worker_slots` this lane's jobs may take at once."""
        return max(0, worker_slots - self.reserved_slots)


@dataclass(frozen=True)
class LanePolicies:
    """Every lane's policy, indexed by lane: `policies["batch"].max_waiting`."""

    interactive: LanePolicy
    batch: LanePolicy

    def __getitem__(self, lane: Lane) -> LanePolicy:
        return self.interactive if lane == "interactive" else self.batch


def lane_policies(settings: Settings) -> LanePolicies:
    """The lanes' policies as `settings` configure them: the one place a setting is chosen
    by lane."""
    return LanePolicies(
        interactive=LanePolicy(
            max_waiting=settings.queue.interactive_max_waiting,
            max_wait_s=settings.queue.interactive_max_wait_s,
            head_start_ms=INTERACTIVE_HEAD_START_MS,
            reserved_slots=0,
        ),
        batch=LanePolicy(
            max_waiting=settings.queue.batch_max_waiting,
            max_wait_s=settings.queue.batch_max_wait_s,
            head_start_ms=0,
            reserved_slots=settings.worker.reserved_interactive_slots,
        ),
    )
