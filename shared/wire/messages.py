"""The Anthropic Messages API request, as pydantic models.

Validation names the offending field; `MessagesRequest.forwardable()` gives back exactly
what the client sent (unset fields stay absent), which is what the worker replays.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, Field, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from shared.wire.json_limits import field_error
from shared.wire.strict_model import RequestBody, StrictModel

STOP_SEQUENCES_MAX = 64
STOP_SEQUENCE_MAX_CHARS = 256
TOOL_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,128}$"


def _without_nul(text: str) -> str:
    # `model` and `system` reach the CLI's command line or a file it reads: no NUL there.
    if "\x00" in text:
        raise PydanticCustomError("nul_character", "must not contain NUL characters")
    return text


# Base64 whose padding may be left off, as the served document states it (api/openapi.py).
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}={0,2}|[A-Za-z0-9+/]{3}=?)?$"
_MOST_PADDING = {0: 0, 2: 2, 3: 1}  # after a last group of this many characters


def _base64(data: str) -> str:
    unpadded = data.rstrip("=")
    padding = len(data) - len(unpadded)
    # b64decode alone also takes padding after a whole group ("AAAA=="): BASE64_PATTERN does not.
    if padding > _MOST_PADDING.get(len(unpadded) % 4, -1):
        raise PydanticCustomError("base64", "is not valid base64 data")
    try:
        base64.b64decode(data + "=" * (-len(data) % 4), validate=True)  # padding may be left off
    except (binascii.Error, ValueError) as exc:
        raise PydanticCustomError("base64", "is not valid base64 data") from exc
    return data


# The pattern is stated in the document; the check above holds it (faster than a regex on 32 MB).
Base64Data = Annotated[
    str, AfterValidator(_base64), WithJsonSchema({"type": "string", "pattern": BASE64_PATTERN})
]
NO_NUL_PATTERN = r"^[^\u0000]*$"  # `_without_nul`, as the served document states it
NoNulText = Annotated[
    str, AfterValidator(_without_nul), Field(json_schema_extra={"pattern": NO_NUL_PATTERN})
]
StopSequence = Annotated[str, Field(max_length=STOP_SEQUENCE_MAX_CHARS)]


class CacheControl(StrictModel):
    type: Literal["ephemeral"]
    ttl: Literal["5m", "1h"] | None = None


class TextBlock(StrictModel):
    type: Literal["text"]
    text: str
    cache_control: CacheControl | None = None
    citations: list[dict[str, Any]] | None = None


class Base64ImageSource(StrictModel):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: Base64Data


class UrlSource(StrictModel):
    type: Literal["url"]
    url: str


class ImageBlock(StrictModel):
    type: Literal["image"]
    source: Annotated[Base64ImageSource | UrlSource, Field(discriminator="type")]
    cache_control: CacheControl | None = None


class Base64PdfSource(StrictModel):
    type: Literal["base64"]
    media_type: Literal["application/pdf"]
    data: Base64Data


class PlainTextSource(StrictModel):
    type: Literal["text"]
    media_type: Literal["text/plain"]
    data: str


class ContentSource(StrictModel):
    type: Literal["content"]
    content: str | list[Annotated[TextBlock | ImageBlock, Field(discriminator="type")]]


class CitationsConfig(StrictModel):
    enabled: bool


class DocumentBlock(StrictModel):
    type: Literal["document"]
    source: Annotated[
        Base64PdfSource | PlainTextSource | ContentSource | UrlSource,
        Field(discriminator="type"),
    ]
    title: str | None = None
    context: str | None = None
    citations: CitationsConfig | None = None
    cache_control: CacheControl | None = None


class ToolUseBlock(StrictModel):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]
    cache_control: CacheControl | None = None


ToolResultContent = Annotated[TextBlock | ImageBlock | DocumentBlock, Field(discriminator="type")]


class ToolResultBlock(StrictModel):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[ToolResultContent] | None = None
    is_error: bool | None = None
    cache_control: CacheControl | None = None


class ThinkingBlock(StrictModel):
    type: Literal["thinking"]
    thinking: str
    signature: str


class RedactedThinkingBlock(StrictModel):
    type: Literal["redacted_thinking"]
    data: str


ContentBlock = Annotated[
    TextBlock
    | ImageBlock
    | DocumentBlock
    | ToolUseBlock
    | ToolResultBlock
    | ThinkingBlock
    | RedactedThinkingBlock,
    Field(discriminator="type"),
]


class Message(StrictModel):
    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class SystemTextBlock(TextBlock):
    text: NoNulText


class Tool(StrictModel):
    name: str = Field(pattern=TOOL_NAME_PATTERN)
    description: str | None = None
    input_schema: dict[str, Any]
    type: Literal["custom"] | None = None
    cache_control: CacheControl | None = None


class ToolChoiceAuto(StrictModel):
    type: Literal["auto"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(StrictModel):
    type: Literal["any"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(StrictModel):
    type: Literal["tool"]
    name: str = Field(pattern=TOOL_NAME_PATTERN)
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(StrictModel):
    type: Literal["none"]


ToolChoice = Annotated[
    ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone, Field(discriminator="type")
]


class ThinkingEnabled(StrictModel):
    type: Literal["enabled"]
    budget_tokens: int = Field(ge=1024)


class ThinkingDisabled(StrictModel):
    type: Literal["disabled"]


class ThinkingAdaptive(StrictModel):
    type: Literal["adaptive"]


ThinkingConfig = Annotated[
    ThinkingEnabled | ThinkingDisabled | ThinkingAdaptive, Field(discriminator="type")
]


class Metadata(StrictModel):
    user_id: str | None = None


class OutputConfig(StrictModel):
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    format: dict[str, Any] | None = None


class MessagesRequest(RequestBody):
    model: NoNulText = Field(min_length=1, max_length=256)
    messages: list[Message] = Field(min_length=1)
    max_tokens: int = Field(ge=1)  # and at most CCFLEET_MAX_TOKENS_LIMIT, checked on admission
    system: NoNulText | list[SystemTextBlock] | None = None
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    stop_sequences: list[StopSequence] | None = Field(default=None, max_length=STOP_SEQUENCES_MAX)
    metadata: Metadata | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None
    service_tier: Literal["auto", "standard_only"] | None = None
    # Newer API fields, accepted so current SDKs and Claude Code work; docs/api.md says which
    # the CLI can honour (output_config.effort) and which it cannot.
    output_config: OutputConfig | None = None
    cache_control: CacheControl | None = None
    container: str | dict[str, Any] | None = None
    context_management: dict[str, Any] | None = None
    diagnostics: dict[str, Any] | None = None
    inference_geo: str | None = None
    speed: Literal["standard", "fast"] | None = None
    user_profile_id: str | None = None
    workspace_id: str | None = None

    @model_validator(mode="after")
    def _tool_choice_names_a_tool(self) -> Self:
        choice = self.tool_choice
        if isinstance(choice, ToolChoiceTool) and choice.name not in {
            tool.name for tool in self.tools or []
        }:
            raise field_error("tool_choice.name", "names no tool of `tools`")
        return self

    def forwardable_messages(self) -> list[dict[str, Any]]:
        """The conversation exactly as the client sent it (no defaults filled in)."""
        return [m.model_dump(mode="json", exclude_unset=True) for m in self.messages]

    def system_text(self) -> str | None:
        """The system prompt as one string (text blocks joined by blank lines)."""
        if self.system is None or isinstance(self.system, str):
            return self.system
        return "\n\n".join(block.text for block in self.system)
