"""An OpenAI Chat Completions request as an Anthropic Messages request (`to_messages_request`).

- system/developer messages (anywhere) -> `system`, joined by blank lines, in order;
  user/assistant -> the same roles; tool messages -> a user message of tool_result blocks
  (consecutive tool messages share one); assistant `tool_calls` -> tool_use blocks.
- Content parts: text, image_url (data URL -> base64 image; http(s) URL -> url image);
  refusal parts of assistant messages become text. Other part types are a 400.
- `tools` (functions) -> Anthropic tools; `tool_choice` none/auto/required/named ->
  none/auto/any/tool (dropped when there are no tools); `parallel_tool_calls: false` ->
  `disable_parallel_tool_use`.
- `max_completion_tokens`, else `max_tokens`, else 4096; `stop` -> `stop_sequences`;
  `temperature` (OpenAI allows 0..2) is capped at 1.0, Anthropic's maximum; `top_p` as is;
  `user` -> `metadata.user_id`. The model name passes through unchanged.
- Accepted but not passed on: `metadata`, `seed`, `frequency_penalty`, `presence_penalty`,
  `response_format` (type text only), `store`, `logprobs` (false only), message `name`s,
  image `detail`. `n` must be 1. Anything else unknown is a 400 naming the field.

The reply goes back the other way in api/openai/chat_reply.py.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

import orjson
from pydantic import ConfigDict, Field, ValidationError, model_validator

from shared.errors import InvalidRequest
from shared.wire.json_limits import FIELD_ERROR
from shared.wire.messages import BASE64_PATTERN, NO_NUL_PATTERN, MessagesRequest
from shared.wire.strict_model import RequestBody, StrictModel

DEFAULT_MAX_TOKENS = 4096
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")

Json = dict[str, Any]


class TextPart(StrictModel):
    type: Literal["text"]
    text: str


# What `_image` takes, stated in the served document: an http(s) URL, or a base64 data URL of
# an image type Anthropic reads.
IMAGE_URL_PATTERN = (
    r"^(?:https?://|data:(?:" + "|".join(IMAGE_MEDIA_TYPES) + ")"
    r"(?:;[^,;]*)*;base64(?:;[^,;]*)*," + BASE64_PATTERN.removeprefix("^") + ")"
)


class ImageUrl(StrictModel):
    url: str = Field(json_schema_extra={"pattern": IMAGE_URL_PATTERN})
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(StrictModel):
    type: Literal["image_url"]
    image_url: ImageUrl


class RefusalPart(StrictModel):
    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[TextPart | ImagePart | RefusalPart, Field(discriminator="type")]


class FunctionCall(StrictModel):
    name: str
    arguments: str


class ToolCall(StrictModel):
    id: str
    type: Literal["function"]
    function: FunctionCall


_INSTRUCTION_ROLES = ("system", "developer")


def _role_rule(roles: list[str], parts: list[str], *, required: list[str], **fields: Json) -> Json:
    """One role's shape in JSON Schema: what `ChatMessage._fits_its_role` checks."""
    text: Json = {"type": "string"}
    if roles == list(_INSTRUCTION_ROLES):
        # They become the request's `system`, which takes no NUL (shared/wire/messages.py).
        text["pattern"] = NO_NUL_PATTERN
    item = {"properties": {"type": {"enum": parts}, "text": text}}
    content_parts = {"type": "array", "items": item}
    absent = {"type": "null"}
    properties = {
        "role": {"enum": roles},
        "content": {"anyOf": [text, content_parts]},
        "tool_calls": absent,
        "tool_call_id": absent,
        **fields,
    }
    return {"properties": properties, "required": required}


# The served document states the role rules, so a message it calls valid is one the server takes.
_ROLE_RULES: Json = {
    "anyOf": [
        _role_rule(list(_INSTRUCTION_ROLES), ["text"], required=["content"]),
        _role_rule(["user"], ["text", "image_url"], required=["content"]),
        _role_rule(
            ["tool"],
            ["text"],
            required=["content", "tool_call_id"],
            tool_call_id={"type": "string"},
        ),
        _role_rule(["assistant"], ["text", "refusal"], required=["content"], tool_calls={}),
        _role_rule(
            ["assistant"],
            ["text", "refusal"],
            required=["tool_calls"],
            content={},
            tool_calls={"type": "array", "minItems": 1},
        ),
    ]
}


class ChatMessage(StrictModel):
    model_config = ConfigDict(json_schema_extra=_ROLE_RULES)

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None

    @model_validator(mode="after")
    def _fits_its_role(self) -> Self:
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(f"a {self.role} message needs `content`")
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError("only assistant messages have `tool_calls`")
        if (self.tool_call_id is None) == (self.role == "tool"):
            raise ValueError("tool messages, and only they, have `tool_call_id`")
        allowed = {"user": (TextPart, ImagePart), "assistant": (TextPart, RefusalPart)}
        kinds = allowed.get(self.role, (TextPart,))
        if isinstance(self.content, list) and not all(isinstance(p, kinds) for p in self.content):
            raise ValueError(
                f"a {self.role} message's content parts can only be text"
                + (" or image_url" if self.role == "user" else "")
            )
        return self


class FunctionDefinition(StrictModel):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefinition(StrictModel):
    type: Literal["function"]
    function: FunctionDefinition


class FunctionName(StrictModel):
    name: str


class NamedToolChoice(StrictModel):
    type: Literal["function"]
    function: FunctionName


class StreamOptions(StrictModel):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class ResponseFormat(StrictModel):
    type: Literal["text"]


class ChatCompletionRequest(RequestBody):
    model: str = Field(min_length=1, json_schema_extra={"pattern": NO_NUL_PATTERN})
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    n: Literal[1] | None = None
    tools: list[ToolDefinition] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    seed: int | None = None
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    response_format: ResponseFormat | None = None
    store: bool | None = None
    logprobs: Literal[False] | None = None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


def to_messages_request(chat: ChatCompletionRequest) -> MessagesRequest:
    """The Anthropic request for a chat completion request; InvalidRequest names the field."""
    system, messages = _conversation(chat.messages)
    fields: Json = {
        "model": chat.model,
        "messages": messages,
        "max_tokens": chat.max_completion_tokens or chat.max_tokens or DEFAULT_MAX_TOKENS,
    }
    if system:
        fields["system"] = system
    if chat.stream:
        fields["stream"] = True
    if chat.temperature is not None:
        fields["temperature"] = min(chat.temperature, 1.0)
    if chat.top_p is not None:
        fields["top_p"] = chat.top_p
    if chat.stop:
        fields["stop_sequences"] = [chat.stop] if isinstance(chat.stop, str) else chat.stop
    if chat.user:
        fields["metadata"] = {"user_id": chat.user}
    if chat.tools:
        fields["tools"] = [_tool(t.function) for t in chat.tools]
        if (choice := _tool_choice(chat)) is not None:
            fields["tool_choice"] = choice
    return validated_request(fields)


def validated_request(fields: Json) -> MessagesRequest:
    """`fields` as a MessagesRequest; InvalidRequest names the field that does not fit."""
    try:
        return MessagesRequest.model_validate(fields)
    except ValidationError as error:
        problem = error.errors()[0]
        if problem["type"] == FIELD_ERROR:
            raise InvalidRequest(problem["msg"]) from error
        where = ".".join(str(part) for part in problem["loc"])
        raise InvalidRequest(f"{where}: {problem['msg']}") from error


def _conversation(messages: list[ChatMessage]) -> tuple[str, list[Json]]:
    system: list[str] = []
    out: list[Json] = []
    previous = ""
    for i, message in enumerate(messages):
        if message.role in ("system", "developer"):
            system.append(_joined_text(message.content))
            continue
        if message.role == "tool":
            result: Json = {"type": "tool_result", "tool_use_id": message.tool_call_id}
            result["content"] = _tool_result_content(message.content)
            if previous == "tool":
                out[-1]["content"].append(result)
            else:
                out.append({"role": "user", "content": [result]})
        elif message.role == "user":
            out.append({"role": "user", "content": _user_content(message.content, i)})
        else:
            out.append({"role": "assistant", "content": _assistant_content(message, i)})
        previous = message.role
    return "\n\n".join(system), out


def _joined_text(content: str | list[ContentPart] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(p.text if isinstance(p, TextPart) else "" for p in content)


def _tool_result_content(content: str | list[ContentPart] | None) -> str | list[Json]:
    if content is None or isinstance(content, str):
        return content or ""
    return [{"type": "text", "text": p.text} for p in content if isinstance(p, TextPart)]


def _user_content(content: str | list[ContentPart] | None, i: int) -> str | list[Json]:
    if content is None or isinstance(content, str):
        return content or ""
    blocks: list[Json] = []
    for j, part in enumerate(content):
        if isinstance(part, ImagePart):
            blocks.append(
                image_block(part.image_url.url, f"messages.{i}.content.{j}.image_url.url")
            )
        elif isinstance(part, TextPart):
            blocks.append({"type": "text", "text": part.text})
    return blocks


def image_block(url: str, field: str) -> Json:
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    header, comma, data = url.partition(",")
    media_type, *params = header.removeprefix("data:").split(";")
    if not (url.startswith("data:") and comma and "base64" in params):
        raise InvalidRequest(f"{field}: must be an http(s) URL or a base64 data URL")
    if media_type not in IMAGE_MEDIA_TYPES:
        raise InvalidRequest(
            f"{field}: the image type must be one of {', '.join(IMAGE_MEDIA_TYPES)}"
        )
    source = {"type": "base64", "media_type": media_type, "data": data}
    return {"type": "image", "source": source}


def _assistant_content(message: ChatMessage, i: int) -> str | list[Json]:
    content = message.content
    if not message.tool_calls and isinstance(content, str):
        return content
    text_parts = [content] if isinstance(content, str) else content or []
    blocks: list[Json] = [
        {"type": "text", "text": text}
        for part in text_parts
        if (text := part if isinstance(part, str) else _part_text(part))
    ]
    for j, call in enumerate(message.tool_calls or []):
        field = f"messages.{i}.tool_calls.{j}.function.arguments"
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.function.name,
                "input": tool_arguments(call.function.arguments, field),
            }
        )
    return blocks


def _part_text(part: ContentPart) -> str:
    if isinstance(part, RefusalPart):
        return part.refusal
    return part.text if isinstance(part, TextPart) else ""


def tool_arguments(arguments: str, field: str) -> Json:
    try:
        parsed = orjson.loads(arguments) if arguments.strip() else {}
    except orjson.JSONDecodeError as error:
        raise InvalidRequest(f"{field}: not valid JSON") from error
    if not isinstance(parsed, dict):
        raise InvalidRequest(f"{field}: must be a JSON object")
    return parsed


def _tool(function: FunctionDefinition) -> Json:
    tool: Json = {
        "name": function.name,
        "input_schema": function.parameters or {"type": "object", "properties": {}},
    }
    if function.description is not None:
        tool["description"] = function.description
    return tool


def _tool_choice(chat: ChatCompletionRequest) -> Json | None:
    choice = chat.tool_choice
    if choice is None and chat.parallel_tool_calls is not False:
        return None
    if isinstance(choice, NamedToolChoice):
        result: Json = {"type": "tool", "name": choice.function.name}
    else:
        result = {"type": {"none": "none", "required": "any"}.get(choice or "auto", "auto")}
    if chat.parallel_tool_calls is False and result["type"] != "none":
        result["disable_parallel_tool_use"] = True
    return result
