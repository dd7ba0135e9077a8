"""/v1/responses: OpenAI's Responses API over the same jobs as /v1/messages.

`POST` turns the request into an Anthropic MessagesRequest (api/responses/translation.py,
after the stored conversation of `previous_response_id`), admits, queues and relays it exactly
as /v1/messages does (one admission: api/admission.py), and translates the job's events back
(api/responses/events.py): streamed as named SSE events, each with its `sequence_number` and
an id `<job>:<chunk>` (a stream is resumed as /v1/messages streams are: the same request again
with `Last-Event-ID`), or gathered into one `response` object. With `store` (the default) the
response is kept (api/responses/store.py) for `GET`, `DELETE`, `input_items` and later
`previous_response_id`s; `background: true` queues it and answers at once
(api/responses/background.py), or streams it: a client may leave such a stream and take it up
again with `GET ?stream=true&starting_after=<sequence number>` while the job runs on. Errors
come out in OpenAI's shape (api/errors.py keys that off the path); after a stream started, as
`response.failed`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import ServerSentEvent

from api.admission import admit_resume, lane_of, queue_job, start_job
from api.auth import CallerKey
from api.openai.errors import openai_error
from api.relay.disconnect import until_disconnected
from api.relay.job_relay import JobRelay
from api.relay.streaming import ChunkRenderer, stream_reply
from api.responses import background
from api.responses.events import ResponseTranslator, response_id_for, response_object
from api.responses.request import InputItem, ResponsesRequest
from api.responses.store import ResponseStore, StoredResponse, dumped_items
from api.responses.translation import ToolNames, to_messages_request
from api.resume import resume_job
from api.routes.messages import ensure_answerable
from api.services import FrontEndServices, Services
from shared.access.client_keys import ClientKey
from shared.broker.outage import OUTAGE_ERRORS
from shared.errors import FleetError, InvalidRequest
from shared.fleet.affinity import named_conversation
from shared.stream.chunk import Chunk
from shared.telemetry.log import request_id_var
from shared.wire.messages import MessagesRequest

logger = logging.getLogger(__name__)
router = APIRouter()

Json = dict[str, Any]


def _store(services: FrontEndServices) -> ResponseStore:
    return ResponseStore(services.redis, ttl_s=services.settings.api.responses_ttl_s)


def _owner(key: ClientKey | None) -> str:
    return key.id if key is not None else ""


def _headers() -> dict[str, str]:
    return {"x-request-id": request_id_var.get() or ""}


@router.post("/v1/responses")
async def create_response(
    body: ResponsesRequest,
    request: Request,
    services: Services,
    key: CallerKey,
) -> Response:
    history: list[InputItem] = []
    if body.previous_response_id:
        previous = await _store(services).load(body.previous_response_id, _owner(key))
        history = previous.conversation()
    # Resolved once, here: the translation, the stored request and its input see the items.
    body.input = await _store(services).resolved(body.input_items(), _owner(key))
    messages_request = to_messages_request(body, history)
    ensure_answerable(messages_request)
    stored = StoredResponse(
        response={},  # its id is its job's (events.py's response_id_for)
        owner=_owner(key),
        request=body.model_dump(mode="json", by_alias=True, exclude_unset=True),
        history=dumped_items(history),
        input=dumped_items(body.input_items()),
    )
    if body.background:
        return await _queued(services, body, messages_request, request, key, stored)
    relay = await _relay(services, body, messages_request, request, key)
    stored.response = response_object(body, response_id_for(relay.reader.job_id))
    translator = ResponseTranslator(
        stored.response, ToolNames.of(body), encrypted_reasoning=body.wants_encrypted_reasoning
    )

    async def store_when_done() -> None:
        if body.store is not False and translator.done:
            await _save(services, stored)

    if body.stream:
        render = _resumable(translator, relay.reader.job_id, request)
        return await _streamed(services, relay, request, translator, render, store_when_done)
    try:
        await until_disconnected(request, _gathered(relay, translator))
    finally:
        await relay.close()
    await store_when_done()
    return JSONResponse(translator.response, headers=_headers())


async def _relay(
    services: FrontEndServices,
    body: ResponsesRequest,
    messages_request: MessagesRequest,
    request: Request,
    key: ClientKey | None,
) -> JobRelay:
    last_event_id = request.headers.get("last-event-id")
    if not (last_event_id and body.stream):
        conversation = named_conversation(_owner(key), body.prompt_cache_key or "")
        return await start_job(services, messages_request, request, key, conversation=conversation)
    await admit_resume(services, key, messages_request, request)
    # The whole job again, from its first chunk: the translator must see what the client saw
    # to give what follows the ids and sequence numbers the client expects.
    return await resume_job(
        services, last_event_id, messages_request, request, key, from_start=True
    )


async def _queued(
    services: FrontEndServices,
    body: ResponsesRequest,
    messages_request: MessagesRequest,
    request: Request,
    key: ClientKey | None,
    stored: StoredResponse,
) -> Response:
    if body.store is False:
        raise InvalidRequest("background: needs `store`.")
    lane = lane_of(request, default="batch")
    conversation = named_conversation(_owner(key), body.prompt_cache_key or "")
    stored.job_id, lease = await queue_job(
        services, messages_request, request, key, lane=lane, conversation=conversation
    )
    stored.lease = dataclasses.asdict(lease) if lease is not None else None
    stored.response = response_object(body, response_id_for(stored.job_id))
    stored.response["status"] = "queued"
    await _store(services).save(stored)
    if body.stream:
        return await _background_stream(services, request, stored, starting_after=-1)
    return JSONResponse(stored.response, headers=_headers())


async def _background_stream(
    services: FrontEndServices, request: Request, stored: StoredResponse, *, starting_after: int
) -> Response:
    """A background response's events, `response.created` and `response.queued` at once, then
    its job's from the first chunk, those numbered after `starting_after` sent; its client may
    leave and come back (`GET ?stream=true`) while the job waits or runs. The response is
    stored once answered (a failure is left to `GET`, which tells a cancelled job from a
    failed one)."""
    if not stored.job_id:
        raise InvalidRequest("stream: only a background response can be streamed again.")
    relay = await services.relays.open(stored.job_id, request, after_seq=0, keeps_job=True)
    translator = background.translator_of(stored)

    async def store_when_answered() -> None:
        if translator.response["status"] in ("completed", "incomplete"):
            stored.response = translator.response
            await _save(services, stored)

    render = _after_sequence(translator, starting_after)
    # Sent at once, as OpenAI does, however long the job waits for a worker.
    opening = [
        _sse(event) for event in translator.queued() if event["sequence_number"] > starting_after
    ]
    return await _streamed(
        services, relay, request, translator, render, store_when_answered, opening=opening
    )


async def _save(services: FrontEndServices, stored: StoredResponse) -> None:
    try:
        await _store(services).save(stored)
    except OUTAGE_ERRORS:
        logger.warning("redis unavailable: response %s answered, not stored", stored.id)


async def _gathered(relay: JobRelay, translator: ResponseTranslator) -> None:
    while not relay.finished:
        translator.feed((await relay.next_chunk()).data)


def _resumable(translator: ResponseTranslator, job_id: str, request: Request) -> ChunkRenderer:
    """Events with ids (`<job>:<chunk>`) to resume with `Last-Event-ID`, those of the chunks
    the client saw (after a resume) left out."""
    last_event_id = request.headers.get("last-event-id") or ":0"
    seen_seq = int(last_event_id.rpartition(":")[2])  # checked by resume_job

    def render(chunk: Chunk) -> Iterable[ServerSentEvent]:
        events = translator.feed(chunk.data)
        if chunk.seq <= seen_seq:
            return []
        return [_sse(event, f"{job_id}:{chunk.seq}") for event in events]

    return render


def _after_sequence(translator: ResponseTranslator, starting_after: int) -> ChunkRenderer:
    """Events numbered after `starting_after`, as OpenAI resumes a background stream."""

    def render(chunk: Chunk) -> Iterable[ServerSentEvent]:
        events = translator.feed(chunk.data)
        return [_sse(event) for event in events if event["sequence_number"] > starting_after]

    return render


async def _streamed(
    services: FrontEndServices,
    relay: JobRelay,
    request: Request,
    translator: ResponseTranslator,
    render: ChunkRenderer,
    on_end: Callable[[], Awaitable[None]],
    *,
    opening: list[ServerSentEvent] | None = None,
) -> Response:
    def render_failure(error: FleetError) -> Iterable[ServerSentEvent]:
        return [_sse(event) for event in translator.failed(openai_error(error))]

    return await stream_reply(
        relay,
        request,
        render=render,
        render_failure=render_failure,
        on_end=on_end,
        opening=opening,
        ping_interval_s=services.settings.api.ping_interval_s,
        send_timeout_s=services.settings.api.send_timeout_s,
        headers=_headers(),
    )


def _sse(event: Json, event_id: str | None = None) -> ServerSentEvent:
    return ServerSentEvent(event=str(event["type"]), data=orjson.dumps(event).decode(), id=event_id)


@router.get("/v1/responses/{response_id}")
async def get_response(
    response_id: str,
    request: Request,
    services: Services,
    key: CallerKey,
    stream: bool = False,
    starting_after: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """The response as it stands; `stream`: a background response's events again, after
    `starting_after` (its sequence number), following its job while it runs."""
    store = _store(services)
    stored = await store.load(response_id, _owner(key))
    if stream:
        after = -1 if starting_after is None else starting_after
        return await _background_stream(services, request, stored, starting_after=after)
    return JSONResponse(await background.current(services, store, stored), headers=_headers())


@router.delete("/v1/responses/{response_id}")
async def delete_response(response_id: str, services: Services, key: CallerKey) -> Response:
    await _store(services).delete(response_id, _owner(key))
    deleted = {"id": response_id, "object": "response", "deleted": True}
    return JSONResponse(deleted, headers=_headers())


@router.post("/v1/responses/{response_id}/cancel")
async def cancel_response(response_id: str, services: Services, key: CallerKey) -> Response:
    store = _store(services)
    stored = await store.load(response_id, _owner(key))
    return JSONResponse(await background.cancel(services, store, stored), headers=_headers())


@router.get("/v1/responses/{response_id}/input_items")
async def list_input_items(
    response_id: str,
    services: Services,
    key: CallerKey,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> Response:
    stored = await _store(services).load(response_id, _owner(key))
    items = stored.input if order == "asc" else stored.input[::-1]
    ids = [item["id"] for item in items]
    if after is not None:
        if after not in ids:
            raise InvalidRequest(f"after: no input item '{after}' in this response.")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    listing = {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }
    return JSONResponse(listing, headers=_headers())
