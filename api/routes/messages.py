"""POST /v1/messages: validate, enqueue, relay the job's chunks (streamed or gathered)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api.admission import admit_resume, start_job
from api.auth import CallerKey
from api.relay.disconnect import until_disconnected
from api.relay.job_relay import ping_event, to_sse
from api.relay.streaming import stream_reply
from api.resume import resume_job
from api.services import Services
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
    services: Services,
    key: CallerKey,
) -> Response:
    ensure_answerable(body)
    last_event_id = request.headers.get("last-event-id")
    if last_event_id and body.stream:
        await admit_resume(services, key, body, request)
        relay = await resume_job(services, last_event_id, body, request, key)
    else:
        relay = await start_job(services, body, request, key)
    if body.stream:
        job_id = relay.reader.job_id
        return await stream_reply(
            relay,
            request,
            render=lambda chunk: [to_sse(chunk, job_id)],
            ping_interval_s=services.settings.api.ping_interval_s,
            send_timeout_s=services.settings.api.send_timeout_s,
            ping_factory=ping_event,
        )
    try:
        return JSONResponse(await until_disconnected(request, relay.gather_message()))
    finally:
        await relay.close()
