"""POST /v1/chat/completions: the OpenAI Chat Completions API over the same jobs as /v1/messages.

The request becomes an Anthropic MessagesRequest (api/openai/chat_request.py), is queued and relayed
exactly as /v1/messages does, and the reply is translated back (api/openai/chat_reply.py):
gathered into one `chat.completion`, or streamed as unnamed `data:` chunks ending in
`data: [DONE]`. Errors come out in OpenAI's shape (api/errors.py keys that off the path).
"""

from __future__ import annotations

import secrets
import time

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import ServerSentEvent

from api.admission import start_job
from api.auth import CallerKey
from api.openai.chat_reply import ChunkTranslator, to_chat_completion
from api.openai.chat_request import ChatCompletionRequest, to_messages_request
from api.relay.disconnect import until_disconnected
from api.relay.streaming import stream_reply
from api.routes.messages import ensure_answerable
from api.services import Services
from shared.telemetry.log import request_id_var

router = APIRouter()


@router.post("/v1/chat/completions")
async def create_chat_completion(
    body: ChatCompletionRequest,
    request: Request,
    services: Services,
    key: CallerKey,
) -> Response:
    messages_request = to_messages_request(body)
    ensure_answerable(messages_request)
    request_id = request_id_var.get() or ""
    relay = await start_job(services, messages_request, request, key)
    # Not derived from the job id: a job id lets its holder resume the stream.
    completion_id = "chatcmpl-" + secrets.token_hex(16)
    created = int(time.time())
    headers = {"x-request-id": request_id}
    if body.stream:
        translator = ChunkTranslator(
            completion_id=completion_id,
            created=created,
            model=body.model,
            include_usage=body.include_usage,
        )
        # Pings are SSE comments, which OpenAI clients skip.
        return await stream_reply(
            relay,
            request,
            render=lambda chunk: [
                ServerSentEvent(data=orjson.dumps(part).decode())
                for part in translator.feed(chunk.data)
            ],
            ping_interval_s=services.settings.api.ping_interval_s,
            send_timeout_s=services.settings.api.send_timeout_s,
            closing=[ServerSentEvent(data="[DONE]")],
            headers=headers,
        )
    try:
        message = await until_disconnected(request, relay.gather_message())
    finally:
        await relay.close()
    completion = to_chat_completion(message, completion_id=completion_id, created=created)
    return JSONResponse(completion, headers=headers)
