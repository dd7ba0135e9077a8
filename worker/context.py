"""What a worker's jobs share, built once at start-up and kept in the arq ctx; and what one
run of the job function gets."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from redis.asyncio import Redis

from shared.batches.store import BatchStore
from shared.queue.job_queue import Claim, JobQueue
from shared.settings import Settings
from shared.telemetry.metrics import FleetMetrics
from worker.batch_feeder import BatchFeeder
from worker.cli.config import CliConfig
from worker.cli.pool import CliPool, PoolStats
from worker.cli.resident import ResidentConversations, ResidentStats


@dataclass
class WorkerState:
    """This worker's identity and load, as its heartbeat reports them."""

    worker_id: str
    host: str
    account: str
    slots: int
    cli_version: str
    busy: int = 0
    busy_batch: int = 0
    draining: bool = False
    cooling_until: float = 0.0
    last_error: str = ""
    started_at_ms: int = 0
    monthly_usd: float = 0.0  # the account's monthly budget; 0: none
    priority: int = 0  # the account's place in the drain order (lower first)
    broken_reason: str = ""
    """Why this worker's CLI cannot serve (worker/cli/check.py); it takes no jobs meanwhile."""
    ready_clis: PoolStats = field(default_factory=PoolStats)
    life_run_id: str = ""
    """The Redis server (its run_id) this worker's life line is held on; empty while it is
    not (worker/life_line.py)."""
    resident_clis: ResidentStats = field(default_factory=ResidentStats)

    @property
    def cooling(self) -> bool:
        return self.cooling_until > time.time()

    @property
    def state(self) -> str:
        """ready | cooling | broken | draining, as the heartbeat reports it."""
        if self.draining:
            return "draining"
        if self.broken_reason:
            return "broken"
        return "cooling" if self.cooling else "ready"

    @contextlib.contextmanager
    def occupied_slot(self, *, batch: bool) -> Iterator[None]:
        self.busy += 1
        self.busy_batch += batch
        try:
            yield
        finally:
            self.busy -= 1
            self.busy_batch -= batch


@dataclass
class WorkerContext:
    settings: Settings
    cli: CliConfig
    state: WorkerState
    queue: JobQueue
    metrics: FleetMetrics = field(default_factory=FleetMetrics)
    pool: CliPool | None = None  # ready CLIs; None when CCFLEET_PREWARM_CLIS is 0
    residents: ResidentConversations | None = None  # None when CCFLEET_RESIDENT_MAX is 0
    # the Message Batches API: where a batch job records its result, who feeds the lane
    batches: BatchStore | None = None
    feeder: BatchFeeder | None = None


@dataclass(frozen=True)
class JobContext:
    """What one run of the job function gets (worker/job_function.py), typed: the worker's
    context, its Redis client, and the claim its poll loop made on the attempt."""

    worker: WorkerContext
    redis: Redis
    claim: Claim
