"""A `POST /v1/responses` body, as the clients send it (the openai SDK, the Agents SDK, Codex).

Strict like every request model (an unknown field is a 400 naming it), with two exceptions
clients depend on: a tool of a type the fleet cannot run (`web_search`, `file_search`, ...) is
accepted whole, to be left out of what the model sees, and input items may carry the `id` and
`status` the server gave them (Codex sends its history back verbatim).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator
from pydantic_core import PydanticCustomError

from api.openai.chat_request import IMAGE_URL_PATTERN
from shared.wire.messages import NO_NUL_PATTERN, NoNulText
from shared.wire.strict_model import RequestBody, StrictModel

ItemStatus = Literal["in_progress", "completed", "incomplete"]


class InputText(StrictModel):
    type: Literal["input_text"]
    text: str


class InputImage(StrictModel):
    type: Literal["input_image"]
    # Required here: ccfleet keeps no files, so an image comes as a URL or a data URL.
    image_url: str = Field(json_schema_extra={"pattern": IMAGE_URL_PATTERN})
    file_id: str | None = None
    detail: Literal["auto", "low", "high", "original"] | None = None


class OutputText(StrictModel):
    type: Literal["output_text"]
    text: str
    annotations: list[dict[str, Any]] | None = None
    logprobs: list[dict[str, Any]] | None = None


class Refusal(StrictModel):
    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[InputText | InputImage | OutputText | Refusal, Field(discriminator="type")]


class MessageItem(StrictModel):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]
    id: str | None = None
    status: ItemStatus | None = None
    phase: str | None = None


class FunctionCallItem(StrictModel):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str
    namespace: str | None = None
    id: str | None = None
    status: ItemStatus | None = None


class FunctionCallOutputItem(StrictModel):
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[ContentPart]
    id: str | None = None
    status: ItemStatus | None = None


class CustomToolCallItem(StrictModel):
    type: Literal["custom_tool_call"]
    call_id: str
    name: str
    input: str
    namespace: str | None = None
    caller: dict[str, Any] | None = None
    id: str | None = None
    status: ItemStatus | None = None


class CustomToolCallOutputItem(StrictModel):
    type: Literal["custom_tool_call_output"]
    call_id: str
    output: str | list[ContentPart]
    caller: dict[str, Any] | None = None
    id: str | None = None
    status: ItemStatus | None = None


class SummaryText(StrictModel):
    type: Literal["summary_text"]
    text: str


class ReasoningItem(StrictModel):
    type: Literal["reasoning"]
    summary: list[SummaryText]
    encrypted_content: str | None = None
    content: list[dict[str, Any]] | None = None
    id: str | None = None
    status: ItemStatus | None = None


class ItemReference(StrictModel):
    """An item of a stored response, named by its id (api/responses/store.py resolves it)."""

    type: Literal["item_reference"]
    id: str


def _item_kind(item: Any) -> str:
    kind = item.get("type", "message") if isinstance(item, dict) else getattr(item, "type", "")
    return str(kind)


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[CustomToolCallItem, Tag("custom_tool_call")]
    | Annotated[CustomToolCallOutputItem, Tag("custom_tool_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")]
    | Annotated[ItemReference, Tag("item_reference")],
    Discriminator(_item_kind),
]


Caller = Literal["direct", "programmatic"]


class ClientTool(StrictModel):
    """What function and custom tools share, the newer fields among them (docs/api.md):
    `defer_loading` (found through a tool search; ccfleet shows it at once),
    `allowed_callers` (who may call it: the model, `direct`, or a program the model wrote,
    `programmatic`, which ccfleet never runs) and `async` (the model goes on without the
    output: refused, as each tool call ends the model's turn)."""

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    allowed_callers: list[Caller] | None = None
    defer_loading: bool | None = None
    async_: Literal[False] | None = Field(default=None, alias="async")

    @field_validator("async_", mode="before")
    @classmethod
    def _not_async(cls, value: Any) -> Any:
        if value is True:
            raise PydanticCustomError(
                "unsupported",
                "async tool calls are not supported: the model's turn ends at each call",
            )
        return value

    @property
    def directly_callable(self) -> bool:
        """The model itself may call it: else only a program could, and none runs here."""
        return self.allowed_callers is None or "direct" in self.allowed_callers


class FunctionTool(ClientTool):
    type: Literal["function"]
    parameters: dict[str, Any] | None = None
    strict: bool | None = None
    output_schema: dict[str, Any] | None = None  # what its string outputs hold: informational


class CustomTool(ClientTool):
    """A freeform tool: its input is one string (`format`: plain text, or a grammar)."""

    type: Literal["custom"]
    format: dict[str, Any] | None = None


NamespacedTool = Annotated[FunctionTool | CustomTool, Field(discriminator="type")]


class NamespaceTool(StrictModel):
    """Function and custom tools grouped under one name (`crm`), called with it."""

    type: Literal["namespace"]
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    tools: list[NamespacedTool]


class HostedTool(BaseModel):
    """A tool the fleet cannot run (web search, file search, a code interpreter, ...):
    accepted with whatever it carries, and not shown to the model."""

    model_config = ConfigDict(extra="allow", strict=True)
    type: str


def _tool_kind(tool: Any) -> str:
    kind = tool.get("type") if isinstance(tool, dict) else getattr(tool, "type", "")
    return kind if kind in ("function", "namespace", "custom") else "hosted"


Tool = Annotated[
    Annotated[FunctionTool, Tag("function")]
    | Annotated[NamespaceTool, Tag("namespace")]
    | Annotated[CustomTool, Tag("custom")]
    | Annotated[HostedTool, Tag("hosted")],
    Discriminator(_tool_kind),
]


class NamedFunction(StrictModel):
    type: Literal["function", "custom"]
    name: str
    namespace: str | None = None


class OtherToolChoice(BaseModel):
    """`allowed_tools` or a hosted tool: the model may call what it was shown."""

    model_config = ConfigDict(extra="allow", strict=True)
    type: str


def _choice_kind(choice: Any) -> str:
    if isinstance(choice, str):
        return "mode"
    kind = choice.get("type") if isinstance(choice, dict) else getattr(choice, "type", "")
    return "function" if kind in ("function", "custom") else "other"


ToolChoice = Annotated[
    Annotated[Literal["none", "auto", "required"], Tag("mode")]
    | Annotated[NamedFunction, Tag("function")]
    | Annotated[OtherToolChoice, Tag("other")],
    Discriminator(_choice_kind),
]


class Reasoning(StrictModel):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class PlainFormat(StrictModel):
    type: Literal["text"]


class JsonObjectFormat(StrictModel):
    type: Literal["json_object"]


class JsonSchemaFormat(StrictModel):
    type: Literal["json_schema"]
    name: str
    schema_: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


TextFormat = Annotated[
    PlainFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")
]


class TextConfig(StrictModel):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class StreamOptions(StrictModel):
    include_obfuscation: bool | None = None


class ResponsesRequest(RequestBody):
    model: str = Field(min_length=1, json_schema_extra={"pattern": NO_NUL_PATTERN})
    input: str | list[InputItem]
    instructions: NoNulText | None = None  # the system prompt: no NUL
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    reasoning: Reasoning | None = None
    text: TextConfig | None = None
    include: list[str] | None = None
    store: bool | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    previous_response_id: str | None = None
    background: bool | None = None
    prompt_cache_key: str | None = None
    # Accepted, not passed on (docs/api.md says so).
    client_metadata: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    service_tier: str | None = None
    truncation: Literal["auto", "disabled"] | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    max_tool_calls: int | None = Field(default=None, ge=1)
    prompt_cache_retention: str | None = None

    def input_items(self) -> list[InputItem]:
        """`input` as items: a string is one user message."""
        if isinstance(self.input, str):
            return [MessageItem(role="user", content=self.input)]
        return list(self.input)

    @property
    def wants_encrypted_reasoning(self) -> bool:
        return "reasoning.encrypted_content" in (self.include or [])
