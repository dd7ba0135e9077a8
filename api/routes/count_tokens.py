"""POST /v1/messages/count_tokens: an ESTIMATE of a request's input tokens, answered locally.

The body is validated like the Anthropic API's (model, messages, system, tools, tool_choice,
thinking; anything else or anything malformed is a 400 naming the field) and answered with
`{"input_tokens": N}` without queuing a job. No Claude tokenizer is available offline, so N
comes from shared/wire/token_estimate.py (about 3.5 characters a token, images by their size)
and the response says so in the header `x-ccfleet-token-count: estimate`.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import Field

from shared.wire.messages import (
    CacheControl,
    Message,
    OutputConfig,
    TextBlock,
    ThinkingConfig,
    Tool,
    ToolChoice,
)
from shared.wire.strict_model import RequestBody
from shared.wire.token_estimate import estimate_input_tokens

router = APIRouter()

ESTIMATE_HEADER = "x-ccfleet-token-count"


class CountTokensRequest(RequestBody):
    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None
    # Accepted like on /v1/messages; they do not change the estimate.
    cache_control: CacheControl | None = None
    output_config: OutputConfig | None = None
    context_management: dict[str, Any] | None = None
    speed: Literal["standard", "fast"] | None = None


@router.post("/v1/messages/count_tokens")
def count_tokens(body: CountTokensRequest) -> JSONResponse:
    """A plain `def`: decoding large images and PDFs runs in the thread pool, not the loop."""
    tokens = estimate_input_tokens(
        messages=body.messages, system=body.system, tools=body.tools, tool_choice=body.tool_choice
    )
    return JSONResponse({"input_tokens": tokens}, headers={ESTIMATE_HEADER: "estimate"})
