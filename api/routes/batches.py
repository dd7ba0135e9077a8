"""The Message Batches API: /v1/messages/batches (create, list), /{id} (read, delete),
/{id}/cancel, /{id}/results (JSONL).

A batch belongs to the client key that created it (`CallerKey`, api/auth.py), by the key's
immutable id: other keys get 404 (also a new key under a revoked key's name), admin keys see
every batch. With auth off every client sees every batch. A batch id off its pattern is 404
before Redis hears of it (it would name another of the batch's keys). A call arriving in a
Redis restart waits it out (`CCFLEET_REDIS_OUTAGE_GRACE_S`), as a message request does: each
step it retries is safe to send twice.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from api.auth import CallerKey
from api.batch_intake import RequestRules, read_batch_body, stored_requests
from api.services import FrontEndServices, Services
from shared.access.admission import accounts_budget_spent
from shared.access.client_keys import ClientKey
from shared.batches.store import NewBatch
from shared.batches.wire import BATCH_ID, BatchState, new_batch_id
from shared.broker.outage import outlasting_outage
from shared.errors import InvalidRequest, NotFound, PermissionDenied
from shared.fleet.registry import read_fleet

router = APIRouter()

T = TypeVar("T")


async def _riding_out(services: FrontEndServices, step: Callable[[], Awaitable[T]]) -> T:
    """`step()`, waiting out a short Redis outage."""
    return await outlasting_outage(step, limit_s=services.settings.redis.outage_grace_s)


def _owner_id(key: ClientKey | None) -> str | None:
    """The id whose batches the caller sees; None: every batch (auth off, or an admin key)."""
    if key is None or key.admin:
        return None
    return key.id


def _checked_id(batch_id: str) -> str:
    if not BATCH_ID.fullmatch(batch_id):
        raise NotFound(f"message batch {batch_id!r} not found.")
    return batch_id


# A listing cursor is a batch id: off its pattern it is a bad parameter (400), checked before
# Redis hears of it, and the served document says so.
Cursor = Annotated[str | None, Query(pattern=f"^{BATCH_ID.pattern}$")]


def _base_url(request: Request, services: FrontEndServices) -> str:
    return (services.settings.batches.public_url or str(request.base_url)).rstrip("/")


async def _expire_if_due(services: FrontEndServices, batch_id: str) -> BatchState | None:
    return await _riding_out(
        services, lambda: services.fleet.batch_dispatch.expire_if_due(batch_id)
    )


async def _visible(services: FrontEndServices, key: ClientKey | None, batch_id: str) -> BatchState:
    """The batch, expired first if due; 404 if absent or not the caller's."""
    state = await _expire_if_due(services, _checked_id(batch_id))
    owner_id = _owner_id(key)
    if state is None or not (owner_id is None or state.owner_id == owner_id):
        raise NotFound(f"message batch {batch_id!r} not found.")
    return state


async def _refuse_if_accounts_spent(services: FrontEndServices) -> None:
    heartbeat_ttl_s = services.settings.worker.heartbeat_ttl_s
    spent = accounts_budget_spent(await read_fleet(services.redis, heartbeat_ttl_s=heartbeat_ttl_s))
    if spent is not None:
        raise spent


@router.post("/v1/messages/batches")
async def create_batch(request: Request, services: Services, key: CallerKey) -> dict[str, Any]:
    if key is not None and not key.allows_lane("batch"):
        raise PermissionDenied("This API key may not use the batch lane.")
    if key is not None:  # a spent budget refuses at once; rpm, tpm and concurrency wait
        await _riding_out(services, lambda: services.fleet.quotas.check_budget(key))
    await _riding_out(services, lambda: _refuse_if_accounts_spent(services))
    items, body_bytes = await read_batch_body(request)
    store = services.fleet.batch_store
    await _riding_out(services, lambda: store.ensure_room(body_bytes))
    rules = RequestRules(key=key, max_tokens_limit=services.settings.api.max_tokens_limit)
    now_ms = int(time.time() * 1000)
    batch = NewBatch(
        id=new_batch_id(),
        owner=key.name if key is not None else "",
        owner_id=key.id if key is not None else "",
        created_at_ms=now_ms,
        expires_at_ms=now_ms + int(services.settings.batches.expiry_s * 1000),
    )
    # A list, not the generator: a create cut off by an outage is written again whole (the
    # items are dropped as they become bodies, so the batch is still held once).
    requests = list(stored_requests(items, rules))
    state = await _riding_out(services, lambda: store.create(batch, requests))
    return state.to_api(_base_url(request, services))


@router.get("/v1/messages/batches")
async def list_batches(
    request: Request,
    services: Services,
    key: CallerKey,
    before_id: Cursor = None,
    after_id: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> dict[str, Any]:
    if before_id is not None and after_id is not None:
        raise InvalidRequest("before_id and after_id cannot be used together.")
    found, more = await _riding_out(
        services,
        lambda: services.fleet.batch_store.page(
            owner_id=_owner_id(key), before_id=before_id, after_id=after_id, limit=limit
        ),
    )
    now_ms = time.time() * 1000
    for position, state in enumerate(found):
        if state.status != "ended" and state.expires_at_ms <= now_ms:
            found[position] = await _expire_if_due(services, state.id) or state
    base_url = _base_url(request, services)
    data = [state.to_api(base_url) for state in found]
    return {
        "data": data,
        "has_more": more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


@router.get("/v1/messages/batches/{batch_id}")
async def get_batch(
    batch_id: str, request: Request, services: Services, key: CallerKey
) -> dict[str, Any]:
    return (await _visible(services, key, batch_id)).to_api(_base_url(request, services))


@router.post("/v1/messages/batches/{batch_id}/cancel")
async def cancel_batch(
    batch_id: str, request: Request, services: Services, key: CallerKey
) -> dict[str, Any]:
    await _visible(services, key, batch_id)
    state = await _riding_out(services, lambda: services.fleet.batch_dispatch.cancel(batch_id))
    if state is None:
        raise NotFound(f"message batch {batch_id!r} not found.")
    return state.to_api(_base_url(request, services))


@router.delete("/v1/messages/batches/{batch_id}")
async def delete_batch(batch_id: str, services: Services, key: CallerKey) -> dict[str, Any]:
    state = await _visible(services, key, batch_id)
    if state.status != "ended":
        raise InvalidRequest(
            f"message batch {batch_id!r} is still in progress; cancel it before deleting it."
        )
    await _riding_out(services, lambda: services.fleet.batch_store.delete(batch_id))
    return {"id": batch_id, "type": "message_batch_deleted"}


@router.get("/v1/messages/batches/{batch_id}/results")
async def batch_results(batch_id: str, services: Services, key: CallerKey) -> StreamingResponse:
    state = await _visible(services, key, batch_id)
    if state.status != "ended":
        raise InvalidRequest(
            f"message batch {batch_id!r} has not ended yet; its results are not ready."
        )

    async def lines() -> AsyncIterator[bytes]:
        async for line in services.fleet.batch_store.results(state):
            yield line + b"\n"

    return StreamingResponse(lines(), media_type="application/binary")
