"""POST /v1/messages: validate, enqueue, relay the job's chunks (streamed or gathered)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.disconnect import until_disconnected
from api.relay import JobRelay, ping_event
from api.state import FrontEnd, front_end
from shared.errors import InvalidRequest
from shared.messages import MessagesRequest

router = APIRouter()


def ensure_answerable(request: MessagesRequest) -> None:
    """What the Claude Code CLI cannot do, refused before anything is queued."""
    if request.messages[-1].role != "user":
        raise InvalidRequest(
            "messages: the last message must have role `user`; "
            "ccfleet cannot continue a prefilled assistant turn."
        )


@router.post("/v1/messages")
async def create_message(
    body: MessagesRequest,
    request: Request,
    fe: Annotated[FrontEnd, Depends(front_end)],
) -> Response:
    ensure_answerable(body)
    last_event_id = request.headers.get("last-event-id")
    if last_event_id and body.stream:
        relay = await fe.resume_job(last_event_id, request)
    else:
        relay = await fe.start_job(body, request)
    if body.stream:
        return await _stream(relay, request, fe)
    try:
        return JSONResponse(await until_disconnected(request, relay.gather_message()))
    finally:
        await relay.close()


async def _stream(relay: JobRelay, request: Request, fe: FrontEnd) -> Response:
    """Errors before the first chunk are plain HTTP errors; after it, SSE error events."""
    try:
        first = await until_disconnected(request, relay.next_chunk())
    except BaseException:
        await relay.close()
        raise

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            async for event in relay.sse_events(first):
                yield event
        finally:
            with anyio.CancelScope(shield=True):
                await relay.close()

    return EventSourceResponse(
        events(), ping=fe.settings.ping_interval_s, ping_message_factory=ping_event
    )
