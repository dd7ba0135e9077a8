"""The soak's Redis and what breaking it costs clients (bench/soak.py).

Two set-ups: one Redis with AOF (restarts on its port and data), or a Sentinel group
(tests/sentinel_group.py: a primary, a replica, three sentinels), where a restart hits the
primary and a failover SIGKILLs it, waits for the sentinels to promote the replica, and
starts it again as a replica.

Every chaos event is logged with its kind and window. A client error is put down to a kind
by what it says where it can be told (a worker that stopped mid-answer: a kill; the job
queue: Redis), and to the latest event of that kind (any kind, for other errors) whose
window, plus its settling time, holds the error's end; else to "none". A failover's recovery
is the time from the kill to the first answer to a request sent after it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ccfleet.embedded_redis import EmbeddedRedis, free_port
from tests.sentinel_group import MASTER, SentinelGroup

SETTLE_S = 2.0  # after an event's end: errors still caused by it
SENTINEL_DOWN_AFTER_MS = 3000  # as k8s production: a restart of up to 2 s is no failover
SENTINEL_GRACE_S = 10.0  # as k8s production: covers a failover


class SoakRedis(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def env(self) -> dict[str, str]: ...
    def url(self) -> str:
        """The (current primary's) URL, to read the jobs after the run."""
        ...

    def restart(self, down_s: float) -> None: ...


class SingleRedis:
    def __init__(self, root: Path) -> None:
        self.server = EmbeddedRedis(root / "redis", port=free_port(), persist=True)

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def env(self) -> dict[str, str]:
        return {"CCFLEET_REDIS_URL": self.server.url}

    def url(self) -> str:
        return self.server.url

    def restart(self, down_s: float) -> None:
        """SIGTERM (AOF flushed), `down_s` down, start on the same port and data."""
        self.server.stop()
        time.sleep(down_s)
        self.server.start()


class SentinelRedis:
    def __init__(self, root: Path) -> None:
        (root / "ha").mkdir(parents=True, exist_ok=True)
        self.group = SentinelGroup(root / "ha", down_after_ms=SENTINEL_DOWN_AFTER_MS)

    def start(self) -> None:
        self.group.start()

    def stop(self) -> None:
        self.group.stop()

    def env(self) -> dict[str, str]:
        return {
            "CCFLEET_REDIS_URL": "redis://127.0.0.1:1/0",  # its host is not used
            "CCFLEET_REDIS_SENTINELS": self.group.sentinels_setting,
            "CCFLEET_REDIS_SENTINEL_MASTER": MASTER,
            "CCFLEET_REDIS_OUTAGE_GRACE_S": str(SENTINEL_GRACE_S),
        }

    def url(self) -> str:
        return self.group.primary().url

    def restart(self, down_s: float) -> None:
        primary = self.group.primary()
        primary.stop()
        time.sleep(down_s)
        primary.start()

    def failover(self) -> float:
        """SIGKILL the primary, wait for the promotion, start the old one as a replica;
        seconds from the kill to the promotion."""
        killed_at = time.monotonic()
        old = self.group.kill_primary()
        self.group.wait_failover(old.port)
        promoted_s = time.monotonic() - killed_at
        self.group.restart(old)
        return promoted_s


@dataclass
class ChaosEvent:
    kind: str  # kill, redis, failover, drop
    start: float
    end: float
    detail: str = ""
    settle_s: float = SETTLE_S


@dataclass
class Attributed:
    """Client errors by the chaos kind they fall after."""

    errors: dict[str, list[str]] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)


_SAID_BY = {"stopped mid-answer": ("kill",), "job queue": ("redis", "failover")}


def attribute(events: list[ChaosEvent], failures: list[tuple[float, str]]) -> Attributed:
    """`failures`: (when it ended, what it said) of each failed request."""
    found = Attributed()
    for event in events:
        found.events[event.kind] = found.events.get(event.kind, 0) + 1
    for ended_at, what in failures:
        kinds = next((k for said, k in _SAID_BY.items() if said in what), None)
        causes = [
            e
            for e in events
            if e.start <= ended_at <= e.end + e.settle_s and (kinds is None or e.kind in kinds)
        ]
        kind = max(causes, key=lambda e: e.start).kind if causes else "none"
        found.errors.setdefault(kind, []).append(what)
    return found


def recovery_s(event: ChaosEvent, answered: list[tuple[float, float]]) -> float | None:
    """From a failover's kill to the first answer to a request sent after it; `answered`:
    (sent, ended) of each request answered whole."""
    ends = [ended for sent, ended in answered if sent >= event.start]
    return min(ends) - event.start if ends else None
