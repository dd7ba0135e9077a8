"""POST /v1/messages: validate, enqueue, relay the job's chunks (streamed or gathered)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from api.admission import FrontEnd, front_end
from api.relay.disconnect import until_disconnected
from api.relay.job_relay import ping_event, to_sse
from api.relay.streaming import stream_reply
from shared.errors import InvalidRequest
from shared.wire.messages import MessagesRequest

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
        relay = await fe.resume_job(last_event_id, body, request)
    else:
        relay = await fe.start_job(body, request)
    if body.stream:
        job_id = relay.reader.job_id
        return await stream_reply(
            relay,
            request,
            render=lambda chunk: [to_sse(chunk, job_id)],
            ping_interval_s=fe.settings.ping_interval_s,
            send_timeout_s=fe.settings.send_timeout_s,
            ping_factory=ping_event,
        )
    try:
        return JSONResponse(await until_disconnected(request, relay.gather_message()))
    finally:
        await relay.close()
