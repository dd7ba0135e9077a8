"""The Message Batches API: /v1/messages/batches (create, list), /{id} (read, delete),
/{id}/cancel, /{id}/results (JSONL).

A batch belongs to the client key that created it (`request.state.client_key`, set by the
auth dependency when keys are on): other keys get 404, admin keys see every batch. With
auth off every client sees every batch.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from api.batch_intake import RequestRules, read_batch_body, stored_requests
from shared.batches.dispatch import BatchDispatch
from shared.batches.store import BatchStore, NewBatch
from shared.batches.wire import BatchState, new_batch_id
from shared.errors import InvalidRequest, NotFound, PermissionDenied
from shared.settings import Settings

router = APIRouter()


@dataclass
class BatchDesk:
    """What the batch routes share, built once by the lifespan (app.state.batch_desk)."""

    settings: Settings
    store: BatchStore
    dispatch: BatchDispatch


def batch_desk(request: Request) -> BatchDesk:
    """FastAPI dependency: the batch routes' shared objects."""
    desk: BatchDesk = request.app.state.batch_desk
    return desk


Desk = Annotated[BatchDesk, Depends(batch_desk)]


def _owner(request: Request) -> tuple[str, bool]:
    """The client key's name ("" when auth is off) and whether it sees every batch."""
    key = getattr(request.state, "client_key", None)
    if key is None:
        return "", True
    return str(key.name), bool(key.admin)


def _base_url(request: Request, desk: BatchDesk) -> str:
    return (desk.settings.public_url or str(request.base_url)).rstrip("/")


async def _visible(desk: BatchDesk, request: Request, batch_id: str) -> BatchState:
    """The batch, expired first if due; 404 if absent or not the caller's."""
    state = await desk.dispatch.expire_if_due(batch_id)
    owner, sees_all = _owner(request)
    if state is None or not (sees_all or state.owner == owner):
        raise NotFound(f"message batch {batch_id!r} not found.")
    return state


@router.post("/v1/messages/batches")
async def create_batch(request: Request, desk: Desk) -> dict[str, Any]:
    key = getattr(request.state, "client_key", None)
    if key is not None and not key.allows_lane("batch"):
        raise PermissionDenied("This API key may not use the batch lane.")
    items, body_bytes = await read_batch_body(request)
    await desk.store.ensure_room(body_bytes)
    rules = RequestRules(key=key, max_tokens_limit=desk.settings.max_tokens_limit)
    now_ms = int(time.time() * 1000)
    batch = NewBatch(
        id=new_batch_id(),
        owner=_owner(request)[0],
        created_at_ms=now_ms,
        expires_at_ms=now_ms + int(desk.settings.batch_expiry_s * 1000),
    )
    state = await desk.store.create(batch, stored_requests(items, rules))
    return state.to_api(_base_url(request, desk))


@router.get("/v1/messages/batches")
async def list_batches(
    request: Request,
    desk: Desk,
    before_id: str | None = None,
    after_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> dict[str, Any]:
    if before_id is not None and after_id is not None:
        raise InvalidRequest("before_id and after_id cannot be used together.")
    owner, sees_all = _owner(request)
    found, more = await desk.store.page(
        owner=None if sees_all else owner, before_id=before_id, after_id=after_id, limit=limit
    )
    now_ms = time.time() * 1000
    for position, state in enumerate(found):
        if state.status != "ended" and state.expires_at_ms <= now_ms:
            found[position] = await desk.dispatch.expire_if_due(state.id) or state
    base_url = _base_url(request, desk)
    data = [state.to_api(base_url) for state in found]
    return {
        "data": data,
        "has_more": more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


@router.get("/v1/messages/batches/{batch_id}")
async def get_batch(batch_id: str, request: Request, desk: Desk) -> dict[str, Any]:
    return (await _visible(desk, request, batch_id)).to_api(_base_url(request, desk))


@router.post("/v1/messages/batches/{batch_id}/cancel")
async def cancel_batch(batch_id: str, request: Request, desk: Desk) -> dict[str, Any]:
    await _visible(desk, request, batch_id)
    state = await desk.dispatch.cancel(batch_id)
    if state is None:
        raise NotFound(f"message batch {batch_id!r} not found.")
    return state.to_api(_base_url(request, desk))


@router.delete("/v1/messages/batches/{batch_id}")
async def delete_batch(batch_id: str, request: Request, desk: Desk) -> dict[str, Any]:
    state = await _visible(desk, request, batch_id)
    if state.status != "ended":
        raise InvalidRequest(
            f"message batch {batch_id!r} is still in progress; cancel it before deleting it."
        )
    await desk.store.delete(batch_id)
    return {"id": batch_id, "type": "message_batch_deleted"}


@router.get("/v1/messages/batches/{batch_id}/results")
async def batch_results(batch_id: str, request: Request, desk: Desk) -> StreamingResponse:
    state = await _visible(desk, request, batch_id)
    if state.status != "ended":
        raise InvalidRequest(
            f"message batch {batch_id!r} has not ended yet; its results are not ready."
        )

    async def lines() -> AsyncIterator[bytes]:
        async for line in desk.store.results(state):
            yield line + b"\n"

    return StreamingResponse(lines(), media_type="application/binary")
