"""POST /v1/responses: OpenAI's Responses API over the same jobs as /v1/messages.

The request becomes an Anthropic MessagesRequest (api/responses/translation.py), is admitted,
queued and relayed exactly as /v1/messages is (one admission: api/admission.py), and the job's
events are translated back (api/responses/events.py): streamed as named SSE events, each with
its `sequence_number` and an id `<job>:<chunk>` (a stream is resumed as /v1/messages streams
are: the same request again with `Last-Event-ID`), or gathered into one `response` object.
Errors come out in OpenAI's shape (api/errors.py keys that off the path); after the stream
started, as `response.failed`.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import ServerSentEvent

from api.admission import admit_resume, start_job
from api.auth import CallerKey
from api.openai.errors import openai_error
from api.relay.disconnect import until_disconnected
from api.relay.job_relay import JobRelay
from api.relay.streaming import stream_reply
from api.responses.events import ResponseTranslator, new_id, response_object
from api.responses.request import ResponsesRequest
from api.responses.translation import ToolNames, to_messages_request
from api.resume import resume_job
from api.routes.messages import ensure_answerable
from api.services import Services
from shared.errors import FleetError
from shared.stream.chunk import Chunk
from shared.telemetry.log import request_id_var

router = APIRouter()


@router.post("/v1/responses")
async def create_response(
    body: ResponsesRequest,
    request: Request,
    services: Services,
    key: CallerKey,
) -> Response:
    messages_request = to_messages_request(body)
    ensure_answerable(messages_request)
    last_event_id = request.headers.get("last-event-id")
    if last_event_id and body.stream:
        await admit_resume(services, key, messages_request, request)
        relay = await resume_job(
            services, last_event_id, messages_request, request, key, from_start=True
        )
    else:
        relay = await start_job(services, messages_request, request, key)
    translator = ResponseTranslator(
        response_object(body, new_id("resp")),
        ToolNames.of(body),
        encrypted_reasoning=body.wants_encrypted_reasoning,
    )
    headers = {"x-request-id": request_id_var.get() or ""}
    if body.stream:
        return await _streamed(services, relay, request, translator, last_event_id, headers)
    try:
        await until_disconnected(request, _gathered(relay, translator))
    finally:
        await relay.close()
    return JSONResponse(translator.response, headers=headers)


async def _gathered(relay: JobRelay, translator: ResponseTranslator) -> None:
    while not relay.finished:
        translator.feed((await relay.next_chunk()).data)


async def _streamed(
    services: Services,
    relay: JobRelay,
    request: Request,
    translator: ResponseTranslator,
    last_event_id: str | None,
    headers: dict[str, str],
) -> Response:
    job_id = relay.reader.job_id
    # A resumed stream replays the job from its start through the translator (its item ids
    # and sequence numbers must be the ones the client saw) and sends what follows the
    # chunk the client saw last.
    seen_seq = int(last_event_id.rpartition(":")[2]) if last_event_id else 0

    def render(chunk: Chunk) -> Iterable[ServerSentEvent]:
        events = translator.feed(chunk.data)
        if chunk.seq <= seen_seq:
            return []
        return [_sse(event, f"{job_id}:{chunk.seq}") for event in events]

    def render_failure(error: FleetError) -> Iterable[ServerSentEvent]:
        return [_sse(event) for event in translator.failed(openai_error(error))]

    return await stream_reply(
        relay,
        request,
        render=render,
        render_failure=render_failure,
        ping_interval_s=services.settings.api.ping_interval_s,
        send_timeout_s=services.settings.api.send_timeout_s,
        headers=headers,
    )


def _sse(event: dict[str, object], event_id: str | None = None) -> ServerSentEvent:
    return ServerSentEvent(event=str(event["type"]), data=orjson.dumps(event).decode(), id=event_id)
