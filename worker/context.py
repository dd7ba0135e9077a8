"""What a worker's jobs share, built once at start-up and kept in the arq ctx."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from shared.settings import Settings
from worker.answer import CliConfig


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
    state: str = "ready"  # ready | cooling | draining
    cooling_until: float = 0.0
    last_error: str = ""
    started_at_ms: int = 0

    @contextlib.contextmanager
    def occupied_slot(self) -> Iterator[None]:
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1


@dataclass
class WorkerContext:
    settings: Settings
    cli: CliConfig
    state: WorkerState
    extras: dict[str, object] = field(default_factory=dict)
