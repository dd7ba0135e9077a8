"""POST /v1/chat/completions: the OpenAI Chat Completions API over the same jobs as /v1/messages.

The request becomes an Anthropic MessagesRequest (api/openai_chat.py), is queued and relayed
exactly as /v1/messages does, and the reply is translated back (api/openai_chat_reply.py):
gathered into one `chat.completion`, or streamed as unnamed `data:` chunks ending in
`data: [DONE]`. Errors come out in OpenAI's shape (api/errors.py keys that off the path).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.disconnect import until_disconnected
from api.errors import error_event
from api.openai_chat import ChatCompletionRequest, to_messages_request
from api.openai_chat_reply import ChunkTranslator, to_chat_completion
from api.relay import JobRelay
from api.routes.messages import ensure_answerable
from api.state import FrontEnd, front_end
from shared.errors import FleetError
from shared.log import request_id_var

router = APIRouter()


@router.post("/v1/chat/completions")
async def create_chat_completion(
    body: ChatCompletionRequest,
    request: Request,
    fe: Annotated[FrontEnd, Depends(front_end)],
) -> Response:
    messages_request = to_messages_request(body)
    ensure_answerable(messages_request)
    request_id = request_id_var.get() or ""
    relay = await fe.start_job(messages_request, request)
    job_id = relay.reader.job_id
    completion_id = "chatcmpl-" + job_id.removeprefix("job_")
    created = int(time.time())
    headers = {"x-request-id": request_id}
    if body.stream:
        translator = ChunkTranslator(
            completion_id=completion_id,
            created=created,
            model=body.model,
            include_usage=body.include_usage,
        )
        return await _stream(relay, translator, request, fe, headers)
    try:
        message = await until_disconnected(request, relay.gather_message())
    finally:
        await relay.close()
    completion = to_chat_completion(message, completion_id=completion_id, created=created)
    return JSONResponse(completion, headers=headers)


async def _stream(
    relay: JobRelay,
    translator: ChunkTranslator,
    request: Request,
    fe: FrontEnd,
    headers: dict[str, str],
) -> Response:
    """Errors before the first chunk are plain HTTP errors; after it, a `data: {"error"}` line."""
    try:
        first = await until_disconnected(request, relay.next_chunk())
    except BaseException:
        await relay.close()
        raise
    path = request.url.path

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            chunk = first
            while True:
                for completion_chunk in translator.feed(chunk.data):
                    yield ServerSentEvent(data=orjson.dumps(completion_chunk).decode())
                if relay.finished:
                    break
                try:
                    chunk = await relay.next_chunk()
                except FleetError as error:
                    yield error_event(error, path)
                    return
            yield ServerSentEvent(data="[DONE]")
        finally:
            with anyio.CancelScope(shield=True):
                await relay.close()

    # Pings are SSE comments, which OpenAI clients skip.
    return EventSourceResponse(events(), ping=fe.settings.ping_interval_s, headers=headers)
