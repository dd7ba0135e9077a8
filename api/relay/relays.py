"""Opens a JobRelay onto a job for one request: the front end's relay machinery in one place.

Every relay of a front end shares its chunk hub (one pub/sub connection for every stream),
its job watch (whether a quiet job still lives) and its detached jobs (jobs whose client left,
kept for a resume window); each relay gets the settings it needs and the client's own resume
window (`x-ccfleet-resume-window`, capped by CCFLEET_RESUME_WINDOW_MAX_S).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from arq.connections import ArqRedis
from fastapi import Request

from api.relay.chunk_hub import ChunkHub
from api.relay.detached import DetachedJobs
from api.relay.job_reader import JobReader
from api.relay.job_relay import JobRelay
from api.relay.job_watch import JobWatch
from api.telemetry.request_recorder import request_timing
from shared.errors import InvalidRequest
from shared.fleet.lanes import Lane
from shared.queue.job_queue import JobQueue
from shared.services import FleetServices
from shared.settings import Settings
from shared.telemetry.metrics import FleetMetrics

RESUME_WINDOW_HEADER = "x-ccfleet-resume-window"


@dataclass(frozen=True)
class JobRelays:
    settings: Settings
    redis: ArqRedis
    queue: JobQueue
    hub: ChunkHub
    watch: JobWatch
    detached: DetachedJobs
    metrics: FleetMetrics

    @classmethod
    def build(cls, services: FleetServices, metrics: FleetMetrics) -> JobRelays:
        settings, redis, queue = services.settings, services.redis, services.queue
        return cls(
            settings=settings,
            redis=redis,
            queue=queue,
            hub=ChunkHub(redis),
            watch=JobWatch(redis, queue, settings, services.fleet_reader),
            detached=DetachedJobs(redis, queue, redis_outage_s=settings.redis.outage_grace_s),
            metrics=metrics,
        )

    async def open(
        self,
        job_id: str,
        request: Request,
        *,
        after_seq: int,
        lane: Lane = "interactive",
        on_close: Callable[[], Awaitable[None]] | None = None,
        keeps_job: bool = False,
    ) -> JobRelay:
        """A relay of `job_id`'s chunks after `after_seq`, attached; `on_close` runs when it
        detaches (the end of a quota lease, say); `keeps_job`: its client's leaving leaves the
        job running (a background response)."""
        timing = request_timing(request)
        timing.first_token.resumed = after_seq > 0  # a resumed stream gives no figure

        def first_token(ttft_s: float) -> None:
            self.metrics.time_to_first_token.labels(lane=lane).observe(ttft_s)

        relay = JobRelay(
            self.redis,
            JobReader(self.redis, self.hub, job_id, after_seq=after_seq),
            self.queue,
            self.watch,
            self.detached,
            check_interval_s=self.settings.journal.check_s,
            redis_outage_s=self.settings.redis.outage_grace_s,
            resume_window_s=self._resume_window(request),
            keeps_job=keeps_job,
            on_first_token=first_token,
            on_close=on_close,
            timing=timing,
        )
        return await relay.open()

    def _resume_window(self, request: Request) -> float:
        raw = request.headers.get(RESUME_WINDOW_HEADER, "0")
        try:
            asked = float(raw)
        except ValueError as exc:
            raise InvalidRequest(f"{RESUME_WINDOW_HEADER}: expected seconds, got {raw!r}.") from exc
        return max(0.0, min(asked, self.settings.api.resume_window_max_s))
