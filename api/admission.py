"""Admission: whether a request may be queued, on which lane, and its job started.

A request names its lane (`x-ccfleet-lane`, interactive by default). It is refused before
anything is queued when it asks for more than the settings allow (400), when its client key
may not use that lane or model (403) or is over one of its quotas (429: the one check every
path makes, shared/access/admission.py), and when the fleet cannot serve (529); otherwise its
job is queued and a relay attached to it (api/relay/). The job's concurrency lease lasts until
the job ends: its worker ends it, or the relay when the client leaves and the job is cancelled.
"""

from __future__ import annotations

import time

from fastapi import Request

from api.relay.job_relay import JobRelay
from api.resume import stream_owner
from api.services import FrontEndServices
from api.telemetry.request_metrics import request_labels
from shared.access import admission
from shared.access.client_keys import ClientKey
from shared.access.quotas import QuotaLease
from shared.broker.outage import outlasting_outage
from shared.errors import InvalidRequest
from shared.fleet.account_policy import choose_account
from shared.fleet.affinity import conversation_key, conversation_notes, preferred_worker
from shared.fleet.lanes import Lane
from shared.fleet.registry import FleetSnapshot, admission_error
from shared.queue.job_queue import new_job_id
from shared.settings import Settings
from shared.telemetry.log import job_id_var, request_id_var
from shared.wire.messages import MessagesRequest

LANE_HEADER = "x-ccfleet-lane"


async def start_job(
    services: FrontEndServices,
    body: MessagesRequest,
    request: Request,
    key: ClientKey | None,
    *,
    conversation: str = "",
) -> JobRelay:
    """Admit and queue a request from `key` (None: auth is off), and attach a relay to its job;
    `conversation`: the one its client named (shared/fleet/affinity.py `named_conversation`)."""
    lane = lane_of(request)
    job_id, lease = await queue_job(
        services, body, request, key, lane=lane, conversation=conversation
    )
    quotas = services.fleet.quotas
    release = (lambda: quotas.release(lease)) if lease is not None else None
    try:
        return await services.relays.open(job_id, request, after_seq=0, lane=lane, on_close=release)
    except BaseException:
        if lease is not None:  # see queue_job
            await quotas.end(lease.key_name, lease.request_id)
        raise


async def queue_job(
    services: FrontEndServices,
    body: MessagesRequest,
    request: Request,
    key: ClientKey | None,
    *,
    lane: Lane,
    conversation: str = "",
) -> tuple[str, QuotaLease | None]:
    """Admit and queue a request on `lane`, with no client attached (a background response
    polls its job); its concurrency lease, if any, lasts until its worker ends the job."""
    settings = services.settings
    check_limits(settings, body)
    request_labels(request).lane = lane
    request_id = request_id_var.get() or ""
    grace_s = settings.redis.outage_grace_s  # a request arriving in a Redis restart waits
    lease = await outlasting_outage(
        lambda: _admit_key(services, key, lane, body, request_id), limit_s=grace_s
    )
    try:
        fleet = await outlasting_outage(services.fleet.fleet_reader, limit_s=grace_s)
        error = admission_error(fleet)
        if error is not None:
            raise error
        notes = await outlasting_outage(
            lambda: conversation_notes(services.redis, conversation_key(body, conversation)),
            limit_s=grace_s,
        )
        account = _account_for(services.settings, notes.account, fleet)
        prefer_worker = preferred_worker(notes.worker, fleet, account)
        job_id = new_job_id()  # the same on every try: a second submit of it is a no-op
        job = await outlasting_outage(
            lambda: services.fleet.queue.submit(
                body,
                request_id=request_id,
                lane=lane,
                lane_limit=services.fleet.lanes[lane].max_waiting,
                owner=stream_owner(body, key),
                client_key=key.name if key else None,
                prefer_account=account,
                prefer_for_ms=settings.queue.affinity_wait_ms,
                prefer_worker=prefer_worker,
                conversation=conversation,
                job_id=job_id,
            ),
            limit_s=grace_s,
        )
        job_id_var.set(job.job_id)
        return job.job_id, lease
    except BaseException:
        if lease is not None:  # refused or failed here: no worker may ever end what it holds
            # (ending twice is harmless, should its job have been queued after all)
            await services.fleet.quotas.end(lease.key_name, lease.request_id)
        raise


def _account_for(settings: Settings, conversation_account: str, fleet: FleetSnapshot) -> str:
    """The account the operator's policy names for a turn of a conversation last served by
    `conversation_account` (shared/fleet/account_policy.py)."""
    return choose_account(
        fleet,
        policy=settings.queue.account_policy,
        threshold=settings.queue.headroom_threshold,
        conversation_account=conversation_account,
        now_s=time.time(),
    )


async def _admit_key(
    services: FrontEndServices,
    key: ClientKey | None,
    lane: Lane,
    body: MessagesRequest,
    request_id: str,
    *,
    new_job: bool = True,
) -> QuotaLease | None:
    if key is None:
        return None
    return await admission.admit(
        services.fleet.quotas,
        key,
        body,
        lane=lane,
        request_id=request_id,
        lease_s=admission.lease_s(services.fleet.lanes[lane], services.settings),
        new_job=new_job,
    )


async def admit_resume(
    services: FrontEndServices, key: ClientKey | None, body: MessagesRequest, request: Request
) -> None:
    """A resume starts no job, but passes the same checks (lane, model, rpm, a full tokens
    window, the budget); its job holds the concurrency lease and the tokens reservation."""
    lane = lane_of(request)
    request_id = request_id_var.get() or ""
    await outlasting_outage(  # as `queue_job` admits: a resume in a Redis restart waits
        lambda: _admit_key(services, key, lane, body, request_id, new_job=False),
        limit_s=services.settings.redis.outage_grace_s,
    )


def check_limits(settings: Settings, body: MessagesRequest) -> None:
    """What the request model cannot bound by itself, as it depends on settings."""
    if body.max_tokens > settings.api.max_tokens_limit:
        raise InvalidRequest(
            f"max_tokens: must be at most {settings.api.max_tokens_limit}, got {body.max_tokens}."
        )


def lane_of(request: Request, default: Lane = "interactive") -> Lane:
    lane = request.headers.get(LANE_HEADER, default)
    if lane not in ("interactive", "batch"):
        raise InvalidRequest(f"{LANE_HEADER}: expected `interactive` or `batch`, got {lane!r}.")
    return "batch" if lane == "batch" else "interactive"
