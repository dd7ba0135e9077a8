"""What the front end's routes need, built once by the lifespan and kept on app.state.

A stream belongs to the request that started it: its record keeps a digest of the request
body (and the name of the client key that sent it, once client keys exist). Resuming with
`Last-Event-ID` needs the same body and key; anything else is 404, as for an unknown stream.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from arq.connections import ArqRedis
from fastapi import Request

from api.relay.chunk_hub import ChunkHub
from api.relay.detached import DetachedJobs
from api.relay.job_reader import JobReader
from api.relay.job_relay import JobRelay
from api.relay.job_watch import JobWatch
from api.telemetry.request_recorder import request_timing
from shared.access.client_keys import ClientKey, KeyStore
from shared.access.quotas import QuotaLease, Quotas
from shared.errors import InvalidRequest, NotFound, PermissionDenied
from shared.fleet.affinity import preferred_account
from shared.fleet.lanes import Lane, LanePolicies
from shared.fleet.registry import admission_error, read_fleet
from shared.queue.job_queue import JobQueue
from shared.settings import Settings
from shared.telemetry.log import job_id_var, request_id_var
from shared.telemetry.metrics import FleetMetrics
from shared.wire.messages import MessagesRequest

LANE_HEADER = "x-ccfleet-lane"
RESUME_WINDOW_HEADER = "x-ccfleet-resume-window"
_EVENT_ID = re.compile(r"(job_[0-9a-f]{32}):([0-9]{1,9})")  # api/relay/job_relay.py `to_sse`


@dataclass
class FrontEnd:
    settings: Settings
    lanes: LanePolicies
    redis: ArqRedis
    hub: ChunkHub
    queue: JobQueue
    watch: JobWatch
    detached: DetachedJobs
    key_store: KeyStore | None  # None: auth is off
    quotas: Quotas
    metrics: FleetMetrics

    async def start_job(self, body: MessagesRequest, request: Request) -> JobRelay:
        """Admit and queue a request, and attach a relay to its job."""
        self.check_limits(body)
        lane = lane_of(request)
        request.state.lane = lane
        # Set by api/auth.py on every route that admits work; None when auth is off.
        key: ClientKey | None = getattr(request.state, "client_key", None)
        request_id = request_id_var.get() or ""
        lease = await self._admit_key(key, lane, body.model, request_id)
        try:
            fleet = await read_fleet(self.redis, heartbeat_ttl_s=self.settings.heartbeat_ttl_s)
            error = admission_error(fleet)
            if error is not None:
                raise error
            job = await self.queue.submit(
                body,
                request_id=request_id,
                lane=lane,
                lane_limit=self.lanes[lane].max_waiting,
                owner=stream_owner(body, request),
                client_key=key.name if key else None,
                prefer_account=await preferred_account(self.redis, body, fleet),
                prefer_for_ms=self.settings.affinity_wait_ms,
            )
            job_id_var.set(job.job_id)
            return await self.relay(job.job_id, request, after_seq=0, lease=lease)
        except BaseException:
            if lease is not None:
                await self.quotas.release(lease)
            raise

    async def _admit_key(
        self, key: ClientKey | None, lane: Lane, model: str, request_id: str
    ) -> QuotaLease | None:
        """403 for a lane or model the key may not use; 429 over one of its quotas."""
        if key is None:
            return None
        if not key.allows_lane(lane):
            raise PermissionDenied(f"This API key may not use the {lane} lane.")
        if not key.allows_model(model):
            raise PermissionDenied(f"This API key may not use the model {model!r}.")
        # A lease outlives any request (its wait, its run, a margin) unless its front end dies.
        lease_s = self.lanes[lane].max_wait_s + self.settings.job_timeout_s + 60
        return await self.quotas.admit(key, request_id, lease_s=lease_s)

    def check_limits(self, body: MessagesRequest) -> None:
        """What the request model cannot bound by itself, as it depends on settings."""
        if body.max_tokens > self.settings.max_tokens_limit:
            raise InvalidRequest(
                f"max_tokens: must be at most {self.settings.max_tokens_limit}, "
                f"got {body.max_tokens}."
            )

    async def resume_job(
        self, last_event_id: str, body: MessagesRequest, request: Request
    ) -> JobRelay:
        """Attach to a running or finished job after the chunk a client saw last; only the
        request that started the stream may resume it."""
        match = _EVENT_ID.fullmatch(last_event_id)
        if match is None:
            raise InvalidRequest("Last-Event-ID: expected the id of an event of this API.")
        job_id, seq = match.groups()
        kept = await self.queue.owner(job_id)
        if kept is None or not same_owner(kept, stream_owner(body, request)):
            raise NotFound(f"Last-Event-ID: no stream {job_id} to resume (it may have expired).")
        job_id_var.set(job_id)
        return await self.relay(job_id, request, after_seq=int(seq))

    async def relay(
        self, job_id: str, request: Request, *, after_seq: int, lease: QuotaLease | None = None
    ) -> JobRelay:
        timing = request_timing(request)
        timing.first_token.resumed = after_seq > 0
        lane = getattr(request.state, "lane", "interactive")

        def first_token(ttft_s: float) -> None:
            self.metrics.time_to_first_token.labels(lane=lane).observe(ttft_s)

        release = (lambda: self.quotas.release(lease)) if lease is not None else None
        relay = JobRelay(
            self.redis,
            JobReader(self.redis, self.hub, job_id, after_seq=after_seq),
            self.queue,
            self.watch,
            self.detached,
            check_interval_s=self.settings.journal_check_s,
            redis_outage_s=self.settings.redis_outage_s,
            resume_window_s=self._resume_window(request),
            on_first_token=first_token,
            on_close=release,
            timing=timing,
        )
        return await relay.open()

    def _resume_window(self, request: Request) -> float:
        raw = request.headers.get(RESUME_WINDOW_HEADER, "0")
        try:
            asked = float(raw)
        except ValueError as exc:
            raise InvalidRequest(f"{RESUME_WINDOW_HEADER}: expected seconds, got {raw!r}.") from exc
        return max(0.0, min(asked, self.settings.resume_window_max_s))


def stream_owner(body: MessagesRequest, request: Request) -> dict[str, str]:
    """What a resume must match: the request body's digest and the client key's name."""
    digest = hashlib.sha256(body.model_dump_json(exclude_unset=True).encode()).hexdigest()
    # Client API keys (issue 9) put the caller's key on request.state.client_key; until
    # then every caller is the same anonymous client "".
    client_key = getattr(request.state, "client_key", None)
    return {"digest": digest, "client": getattr(client_key, "name", "")}


def same_owner(kept: dict[str, str], asking: dict[str, str]) -> bool:
    """Same body and same client key (constant-time: the digest is a capability)."""
    return hmac.compare_digest(kept["digest"], asking["digest"]) and hmac.compare_digest(
        kept["client"], asking["client"]
    )


def lane_of(request: Request) -> Lane:
    lane = request.headers.get(LANE_HEADER, "interactive")
    if lane not in ("interactive", "batch"):
        raise InvalidRequest(f"{LANE_HEADER}: expected `interactive` or `batch`, got {lane!r}.")
    return "batch" if lane == "batch" else "interactive"


def front_end(request: Request) -> FrontEnd:
    """FastAPI dependency: the front end's shared objects."""
    state: FrontEnd = request.app.state.front_end
    return state
