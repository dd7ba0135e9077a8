"""What the front end's routes need, built once by the lifespan and kept on app.state."""

from __future__ import annotations

from dataclasses import dataclass

from arq.connections import ArqRedis
from fastapi import Request

from api.chunk_hub import ChunkHub
from api.detached import DetachedJobs
from api.job_reader import JobReader
from api.job_watch import JobWatch
from api.relay import JobRelay
from shared.conversation import preferred_account
from shared.errors import InvalidRequest, NotFound
from shared.fleet import Lane, all_cooling_error, read_fleet
from shared.job_queue import JobQueue
from shared.log import job_id_var, request_id_var
from shared.messages import MessagesRequest
from shared.settings import Settings

LANE_HEADER = "x-ccfleet-lane"
RESUME_WINDOW_HEADER = "x-ccfleet-resume-window"


@dataclass
class FrontEnd:
    settings: Settings
    redis: ArqRedis
    hub: ChunkHub
    queue: JobQueue
    watch: JobWatch
    detached: DetachedJobs

    async def start_job(self, body: MessagesRequest, request: Request) -> JobRelay:
        """Admit and queue a request, and attach a relay to its job."""
        lane = lane_of(request)
        fleet = await read_fleet(self.redis, heartbeat_ttl_s=self.settings.heartbeat_ttl_s)
        error = all_cooling_error(fleet)
        if error is not None:
            raise error
        limit = (
            self.settings.interactive_max_waiting
            if lane == "interactive"
            else self.settings.batch_max_waiting
        )
        job = await self.queue.submit(
            body,
            request_id=request_id_var.get() or "",
            lane=lane,
            lane_limit=limit,
            prefer_account=await preferred_account(self.redis, body, fleet),
            prefer_for_ms=self.settings.affinity_wait_ms,
        )
        job_id_var.set(job.job_id)
        return await self.relay(job.job_id, request, after_seq=0)

    async def resume_job(self, last_event_id: str, request: Request) -> JobRelay:
        """Attach to a running or finished job after the chunk a client saw last."""
        job_id, _, seq = last_event_id.rpartition(":")
        if not job_id or not seq.isdigit():
            raise InvalidRequest("Last-Event-ID: expected the id of an event of this API.")
        if await self.queue.state(job_id) is None:
            raise NotFound(f"Last-Event-ID: no stream {job_id} to resume (it may have expired).")
        job_id_var.set(job_id)
        return await self.relay(job_id, request, after_seq=int(seq))

    async def relay(self, job_id: str, request: Request, *, after_seq: int) -> JobRelay:
        relay = JobRelay(
            self.redis,
            JobReader(self.redis, self.hub, job_id, after_seq=after_seq),
            self.queue,
            self.watch,
            self.detached,
            check_interval_s=self.settings.journal_check_s,
            redis_outage_s=self.settings.redis_outage_s,
            resume_window_s=self._resume_window(request),
        )
        return await relay.open()

    def _resume_window(self, request: Request) -> float:
        raw = request.headers.get(RESUME_WINDOW_HEADER, "0")
        try:
            asked = float(raw)
        except ValueError as exc:
            raise InvalidRequest(f"{RESUME_WINDOW_HEADER}: expected seconds, got {raw!r}.") from exc
        return max(0.0, min(asked, self.settings.resume_window_max_s))


def lane_of(request: Request) -> Lane:
    lane = request.headers.get(LANE_HEADER, "interactive")
    if lane not in ("interactive", "batch"):
        raise InvalidRequest(f"{LANE_HEADER}: expected `interactive` or `batch`, got {lane!r}.")
    return "batch" if lane == "batch" else "interactive"


def front_end(request: Request) -> FrontEnd:
    """FastAPI dependency: the front end's shared objects."""
    state: FrontEnd = request.app.state.front_end
    return state
