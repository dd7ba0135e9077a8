"""A Responses request as an Anthropic Messages request (`to_messages_request`).

- `instructions`, then system and developer messages (anywhere, in order) -> `system`, joined
  by blank lines: the model sees them as its system prompt, not as turns.
- user and assistant messages -> turns of their role; consecutive items of one role share a
  turn (the API would merge them): `function_call` items join the assistant turn as tool_use
  blocks, `function_call_output` items join the next user turn as tool_result blocks.
- `reasoning` items whose `encrypted_content` ccfleet wrote (a thinking block and its
  signature, events.py) go back as that block; others are dropped (nothing to replay).
- Function tools as they are; a namespace's tools (function or custom) flattened as
  `<namespace>__<name>` and named back in calls (`ToolNames`); a custom (freeform) tool as a
  tool of one string property `input` (its grammar, if any, in its description), its calls
  named back as `custom_tool_call` items and `custom_tool_call` items sent as that tool's
  calls; hosted tools (`web_search`, ...) are not shown, nor tools only a program may call
  (`allowed_callers` without `direct`); a deferred tool (`defer_loading`) is shown at once.
- `tool_choice` none/auto/required/named -> none/auto/any/tool; `parallel_tool_calls: false`
  -> `disable_parallel_tool_use`; `max_output_tokens` (default 32000: Codex sends none and
  writes whole files in one call); `temperature` capped at 1; `top_p`; `reasoning.effort`
  -> a thinking budget (`none`: off); `text.format` json_schema / json_object -> an
  instruction appended to the system prompt (the CLI has no structured-output flag).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

import orjson

from api.openai.chat_request import image_block, tool_arguments, validated_request
from api.responses.request import (
    ContentPart,
    CustomTool,
    CustomToolCallItem,
    CustomToolCallOutputItem,
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionTool,
    HostedTool,
    InputImage,
    InputItem,
    InputText,
    ItemReference,
    JsonObjectFormat,
    JsonSchemaFormat,
    MessageItem,
    NamedFunction,
    NamespaceTool,
    OutputText,
    ReasoningItem,
    Refusal,
    ResponsesRequest,
)
from shared.errors import InvalidRequest
from shared.wire.messages import MessagesRequest

Json = dict[str, Any]

DEFAULT_MAX_OUTPUT_TOKENS = 32000
NAMESPACE_SEPARATOR = "__"
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32000}
REASONING_PREFIX = "ccfleet."  # marks encrypted_content ccfleet wrote
CUSTOM_INPUT = "input"  # the one property of a custom tool's input, as the model sees it


@dataclass
class ToolNames:
    """The names the model sees for the client's tools, and back: a namespace's tool is
    `<namespace>__<name>` to the model and (`name`, `namespace`) to the client."""

    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)
    custom: set[str] = field(default_factory=set)  # freeform tools: their calls are items apart

    @classmethod
    def of(cls, request: ResponsesRequest) -> ToolNames:
        names = cls()
        for tool in request.tools or []:
            if isinstance(tool, NamespaceTool):
                for inner in tool.tools:
                    names._add(inner, tool.name)
            elif isinstance(tool, FunctionTool | CustomTool):
                names._add(tool, None)
        return names

    def _add(self, tool: FunctionTool | CustomTool, namespace: str | None) -> None:
        flat = flat_name(namespace, tool.name)
        if namespace:
            self.namespaced[flat] = (tool.name, namespace)
        if isinstance(tool, CustomTool):
            self.custom.add(flat)

    def client_name(self, model_name: str) -> tuple[str, str | None]:
        """(name, namespace) of a tool the model called."""
        name, namespace = self.namespaced.get(model_name, (model_name, ""))
        return name, namespace or None


def flat_name(namespace: str | None, name: str) -> str:
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if namespace else name


def encode_thinking(block: Json) -> str:
    """A thinking block as a reasoning item's `encrypted_content` (opaque to clients)."""
    return REASONING_PREFIX + base64.b64encode(orjson.dumps(block)).decode()


def _decode_thinking(item: ReasoningItem) -> Json | None:
    content = item.encrypted_content or ""
    if not content.startswith(REASONING_PREFIX):
        return None  # another server's, or none: nothing the model could use
    try:
        block = orjson.loads(base64.b64decode(content.removeprefix(REASONING_PREFIX)))
    except (binascii.Error, orjson.JSONDecodeError) as error:
        raise InvalidRequest("input: a reasoning item's encrypted_content is damaged") from error
    if not isinstance(block, dict) or block.get("type") not in ("thinking", "redacted_thinking"):
        raise InvalidRequest("input: a reasoning item's encrypted_content is damaged")
    return block


def to_messages_request(
    request: ResponsesRequest, history: list[InputItem] | None = None
) -> MessagesRequest:
    """The Anthropic request for `history` (a stored response's items) then the request's
    input; InvalidRequest names the field that does not fit."""
    system, messages = _conversation([*(history or []), *request.input_items()])
    system_parts = [request.instructions or "", system, _format_instruction(request)]
    max_tokens = request.max_output_tokens or DEFAULT_MAX_OUTPUT_TOKENS
    fields: Json = {"model": request.model, "messages": messages, "max_tokens": max_tokens}
    if joined := "\n\n".join(part for part in system_parts if part):
        fields["system"] = joined
    if request.stream:
        fields["stream"] = True
    if request.temperature is not None:
        fields["temperature"] = min(request.temperature, 1.0)
    if request.top_p is not None:
        fields["top_p"] = request.top_p
    if user := request.safety_identifier or request.user:
        fields["metadata"] = {"user_id": user}
    if thinking := _thinking(request, max_tokens):
        fields["thinking"] = thinking
    if tools := _tools(request):
        fields["tools"] = tools
        if (choice := _tool_choice(request)) is not None:
            fields["tool_choice"] = choice
    return validated_request(fields)


def _thinking(request: ResponsesRequest, max_tokens: int) -> Json | None:
    effort = request.reasoning.effort if request.reasoning else None
    if effort is None:
        return None
    if effort == "none":
        return {"type": "disabled"}
    budget = min(THINKING_BUDGETS[effort], max_tokens - 1)
    return {"type": "enabled", "budget_tokens": budget} if budget >= 1024 else None


def _format_instruction(request: ResponsesRequest) -> str:
    fmt = request.text.format if request.text else None
    if isinstance(fmt, JsonSchemaFormat):
        schema = orjson.dumps(fmt.schema_).decode()
        return (
            "Answer with one JSON value and nothing else (no code fence), valid against "
            f"this JSON schema (named {fmt.name}): {schema}"
        )
    if isinstance(fmt, JsonObjectFormat):
        return "Answer with one JSON object and nothing else (no code fence)."
    return ""


class _Turns:
    """Messages built item by item: an item of the last turn's role joins that turn."""

    def __init__(self) -> None:
        self.system: list[str] = []
        self.messages: list[Json] = []

    def add(self, role: str, blocks: list[Json]) -> None:
        if not blocks:
            return
        if self.messages and self.messages[-1]["role"] == role:
            self.messages[-1]["content"].extend(blocks)
        else:
            self.messages.append({"role": role, "content": blocks})


def _conversation(items: list[InputItem]) -> tuple[str, list[Json]]:
    turns = _Turns()
    for i, item in enumerate(items):
        field = f"input.{i}"
        if isinstance(item, MessageItem) and item.role in ("system", "developer"):
            turns.system.append(_plain_text(item.content))
        elif isinstance(item, MessageItem):
            turns.add(item.role, _message_blocks(item, field))
        elif isinstance(item, FunctionCallItem | CustomToolCallItem):
            turns.add("assistant", [_tool_use(item, field)])
        elif isinstance(item, FunctionCallOutputItem | CustomToolCallOutputItem):
            turns.add("user", [_tool_result(item)])
        elif isinstance(item, ItemReference):  # ResponseStore.resolved replaces each
            raise InvalidRequest(f"{field}: item_reference '{item.id}' was not resolved")
        elif (block := _decode_thinking(item)) is not None:
            turns.add("assistant", [block])
    return "\n\n".join(turns.system), turns.messages


def _plain_text(content: str | list[ContentPart]) -> str:
    if isinstance(content, str):
        return content
    return "\n\n".join(_part_text(part) for part in content if _part_text(part))


def _part_text(part: ContentPart) -> str:
    if isinstance(part, Refusal):
        return part.refusal
    return "" if isinstance(part, InputImage) else part.text


def _message_blocks(item: MessageItem, field: str) -> list[Json]:
    if isinstance(item.content, str):
        return [{"type": "text", "text": item.content}] if item.content else []
    blocks: list[Json] = []
    for j, part in enumerate(item.content):
        if isinstance(part, InputImage):
            if item.role != "user":
                raise InvalidRequest(f"{field}.content.{j}: only user messages carry images")
            blocks.append(_input_image(part, f"{field}.content.{j}"))
        elif text := _part_text(part):
            blocks.append({"type": "text", "text": text})
    return blocks


def _input_image(part: InputImage, field: str) -> Json:
    return image_block(part.image_url, f"{field}.image_url")


def _tool_use(item: FunctionCallItem | CustomToolCallItem, field: str) -> Json:
    if isinstance(item, CustomToolCallItem):
        arguments: Json = {CUSTOM_INPUT: item.input}
    else:
        arguments = tool_arguments(item.arguments, f"{field}.arguments")
    return {
        "type": "tool_use",
        "id": item.call_id,
        "name": flat_name(item.namespace, item.name),
        "input": arguments,
    }


def _tool_result(item: FunctionCallOutputItem | CustomToolCallOutputItem) -> Json:
    output = item.output
    if isinstance(output, str):
        content: str | list[Json] = output
    else:
        content = [
            {"type": "text", "text": part.text}
            for part in output
            if isinstance(part, InputText | OutputText)
        ]
    return {"type": "tool_result", "tool_use_id": item.call_id, "content": content}


def _tools(request: ResponsesRequest) -> list[Json]:
    tools: list[Json] = []
    for tool in request.tools or []:
        if isinstance(tool, NamespaceTool):
            tools += [
                _client_tool(tool.name, inner) for inner in tool.tools if inner.directly_callable
            ]
        elif isinstance(tool, FunctionTool | CustomTool):
            tools += [_client_tool(None, tool)] if tool.directly_callable else []
        else:
            assert isinstance(tool, HostedTool)  # not the fleet's to run: not shown
    return tools


def _client_tool(namespace: str | None, tool: FunctionTool | CustomTool) -> Json:
    """A tool as the model sees it. `defer_loading` is not passed on: the CLI's own tool
    search is off (worker/cli/command.py), so a deferred tool is simply shown."""
    name = flat_name(namespace, tool.name)
    return _custom_tool(name, tool) if isinstance(tool, CustomTool) else _tool(name, tool)


def _tool(name: str, function: FunctionTool) -> Json:
    tool: Json = {
        "name": name,
        "input_schema": function.parameters or {"type": "object", "properties": {}},
    }
    if function.description is not None:
        tool["description"] = function.description
    return tool


def _custom_tool(name: str, tool: CustomTool) -> Json:
    """A freeform tool as the model can call it (by `name`): one string property."""
    description = tool.description or ""
    fmt = tool.format or {}
    if fmt.get("type") == "grammar":
        syntax, definition = fmt.get("syntax", ""), fmt.get("definition", "")
        grammar = f"Its input follows this {syntax} grammar:\n{definition}"
        description = f"{description}\n\n{grammar}" if description else grammar
    schema = {
        "type": "object",
        "properties": {CUSTOM_INPUT: {"type": "string", "description": "The tool's input."}},
        "required": [CUSTOM_INPUT],
    }
    tool_json: Json = {"name": name, "input_schema": schema}
    if description:
        tool_json["description"] = description
    return tool_json


def _tool_choice(request: ResponsesRequest) -> Json | None:
    choice = request.tool_choice
    if choice is None and request.parallel_tool_calls is not False:
        return None
    if isinstance(choice, NamedFunction):
        result: Json = {"type": "tool", "name": flat_name(choice.namespace, choice.name)}
    elif isinstance(choice, str):
        result = {"type": {"none": "none", "required": "any"}.get(choice, "auto")}
    else:
        result = {"type": "auto"}  # allowed_tools or a hosted tool: what it was shown
    if request.parallel_tool_calls is False and result["type"] != "none":
        result["disable_parallel_tool_use"] = True
    return result
