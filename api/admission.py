"""Admission: whether a request may be queued, on which lane, and its job started.

A request names its lane (`x-ccfleet-lane`, interactive by default). It is refused before
anything is queued when it asks for more than the settings allow (400), when its client key
may not use that lane or model (403) or is over one of its quotas (429), and when the fleet
cannot serve (529); otherwise its job is queued and a relay attached to it (api/relay/).
"""

from __future__ import annotations

from fastapi import Request

from api.relay.job_relay import JobRelay
from api.resume import stream_owner
from api.services import FrontEndServices
from api.telemetry.request_metrics import request_labels
from shared.access.client_keys import ClientKey
from shared.access.quotas import QuotaLease
from shared.errors import InvalidRequest, PermissionDenied
from shared.fleet.affinity import preferred_account
from shared.fleet.registry import Lane, admission_error, read_fleet
from shared.settings import Settings
from shared.telemetry.log import job_id_var, request_id_var
from shared.wire.messages import MessagesRequest

LANE_HEADER = "x-ccfleet-lane"


async def start_job(
    services: FrontEndServices, body: MessagesRequest, request: Request, key: ClientKey | None
) -> JobRelay:
    """Admit and queue a request from `key` (None: auth is off), and attach a relay to its job."""
    settings = services.settings
    check_limits(settings, body)
    lane = lane_of(request)
    request_labels(request).lane = lane
    request_id = request_id_var.get() or ""
    lease = await _admit_key(services, key, lane, body.model, request_id)
    try:
        fleet = await read_fleet(services.redis, heartbeat_ttl_s=settings.worker.heartbeat_ttl_s)
        error = admission_error(fleet)
        if error is not None:
            raise error
        limit = (
            settings.queue.interactive_max_waiting
            if lane == "interactive"
            else settings.queue.batch_max_waiting
        )
        job = await services.fleet.queue.submit(
            body,
            request_id=request_id,
            lane=lane,
            lane_limit=limit,
            owner=stream_owner(body, key),
            client_key=key.name if key else None,
            prefer_account=await preferred_account(services.redis, body, fleet),
            prefer_for_ms=settings.queue.affinity_wait_ms,
        )
        job_id_var.set(job.job_id)
        quotas = services.fleet.quotas
        release = (lambda: quotas.release(lease)) if lease is not None else None
        return await services.relays.open(
            job.job_id, request, after_seq=0, lane=lane, on_close=release
        )
    except BaseException:
        if lease is not None:
            await services.fleet.quotas.release(lease)
        raise


async def _admit_key(
    services: FrontEndServices, key: ClientKey | None, lane: Lane, model: str, request_id: str
) -> QuotaLease | None:
    """403 for a lane or model the key may not use; 429 over one of its quotas."""
    if key is None:
        return None
    if not key.allows_lane(lane):
        raise PermissionDenied(f"This API key may not use the {lane} lane.")
    if not key.allows_model(model):
        raise PermissionDenied(f"This API key may not use the model {model!r}.")
    settings = services.settings
    max_wait_s = (
        settings.queue.interactive_max_wait_s
        if lane == "interactive"
        else settings.queue.batch_max_wait_s
    )
    # A lease outlives any request (its wait, its run, a margin) unless its front end dies.
    lease_s = max_wait_s + settings.jobs.timeout_s + 60
    return await services.fleet.quotas.admit(key, request_id, lease_s=lease_s)


def check_limits(settings: Settings, body: MessagesRequest) -> None:
    """What the request model cannot bound by itself, as it depends on settings."""
    if body.max_tokens > settings.api.max_tokens_limit:
        raise InvalidRequest(
            f"max_tokens: must be at most {settings.api.max_tokens_limit}, got {body.max_tokens}."
        )


def lane_of(request: Request) -> Lane:
    lane = request.headers.get(LANE_HEADER, "interactive")
    if lane not in ("interactive", "batch"):
        raise InvalidRequest(f"{LANE_HEADER}: expected `interactive` or `batch`, got {lane!r}.")
    return "batch" if lane == "batch" else "interactive"
