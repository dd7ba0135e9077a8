"""Resuming a stream, and who may: a stream belongs to the request that started it.

A job's record keeps the owner of its stream: a digest of the request body and the id of
the client key that sent it (immutable: a new key under a revoked key's name is another
owner). Resuming with `Last-Event-ID` needs the same body and key; anything else is 404, as
for an unknown stream.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from fastapi import Request

from api.relay.job_relay import JobRelay
from api.services import FrontEndServices
from shared.access.client_keys import ClientKey
from shared.broker.outage import outlasting_outage
from shared.errors import InvalidRequest, NotFound
from shared.telemetry.log import job_id_var
from shared.wire.messages import MessagesRequest

_EVENT_ID = re.compile(r"(job_[0-9a-f]{32}):([0-9]{1,9})")  # api/relay/job_relay.py `to_sse`


async def resume_job(
    services: FrontEndServices,
    last_event_id: str,
    body: MessagesRequest,
    request: Request,
    key: ClientKey | None,
    *,
    from_start: bool = False,
) -> JobRelay:
    """Attach to a running or finished job after the chunk a client saw last (`from_start`:
    from its first chunk, for a route that must replay what the client saw to translate what
    follows); only the request that started the stream may resume it."""
    match = _EVENT_ID.fullmatch(last_event_id)
    if match is None:
        raise InvalidRequest("Last-Event-ID: expected the id of an event of this API.")
    job_id, seq = match.groups()
    # A resume arriving in a Redis restart waits it out, as a new request does.
    kept = await outlasting_outage(
        lambda: services.fleet.queue.owner(job_id), limit_s=services.settings.redis.outage_grace_s
    )
    if kept is None or not same_owner(kept, stream_owner(body, key)):
        raise NotFound(f"Last-Event-ID: no stream {job_id} to resume (it may have expired).")
    job_id_var.set(job_id)
    return await services.relays.open(job_id, request, after_seq=0 if from_start else int(seq))


def stream_owner(body: MessagesRequest, key: ClientKey | None) -> dict[str, str]:
    """What a resume must match: the request body's digest and the client key's id ("":
    auth is off, and every caller is the same anonymous client)."""
    digest = hashlib.sha256(body.model_dump_json(exclude_unset=True).encode()).hexdigest()
    return {"digest": digest, "client": key.id if key is not None else ""}


def same_owner(kept: dict[str, str], asking: dict[str, str]) -> bool:
    """Same body and same client key (constant-time: the digest is a capability)."""
    return hmac.compare_digest(kept["digest"], asking["digest"]) and hmac.compare_digest(
        kept["client"], asking["client"]
    )
