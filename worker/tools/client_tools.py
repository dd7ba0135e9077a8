"""Client-defined tools: shown to the model through an MCP server, never run by the CLI.

The tool server and its defer hook go to a started CLI over its control channel, so a ready
CLI takes a request with tools as it takes any other (measured with CLI 2.1.332,
docs/measured-facts.md §10): `initialize` registers a PreToolUse hook callback and
`mcp_set_servers` an "SDK" MCP server;
the CLI then asks the worker (`control_request`s: `mcp_message`, `hook_callback`), and
`answer_cli_request` answers from worker/tools/tool_server.py and with `defer`.

The CLI names MCP tools `mcp__<server>__<name>`, so names are mapped both ways: prefixed in
the replayed history, unprefixed in the streamed tool_use blocks the client gets. The CLI is
stopped before it would call a tool: the hook answers `defer` (non-bare runs), and
`--max-turns 1` ends bare runs (which run no hooks) after the model's turn.
"""

from __future__ import annotations

from typing import Any

from shared.wire.messages import MessagesRequest
from worker.tools.tool_server import SERVER_NAME, answer

CLI_TOOL_PREFIX = f"mcp__{SERVER_NAME}__"

_DEFER_CALLBACK = "defer"
_DEFER = {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "defer"}}


def tools_for_cli(request: MessagesRequest) -> list[dict[str, Any]]:
    """The tools the model may see. With tool_choice `none` they are hidden, unless the
    history already uses them (the API needs their definitions then)."""
    if not request.tools:
        return []
    choice = request.tool_choice
    if choice is not None and choice.type == "none" and not _history_uses_tools(request):
        return []
    return [tool.model_dump(mode="json", exclude_none=True) for tool in request.tools]


def tool_choice_instruction(request: MessagesRequest) -> str | None:
    """The CLI cannot force a tool; for `any` and `tool` the system prompt asks for it."""
    choice = request.tool_choice
    if not request.tools or choice is None:
        return None
    if choice.type == "any":
        return "In this turn you must call one of the available tools."
    if choice.type == "tool":
        return f"In this turn you must call the tool {CLI_TOOL_PREFIX}{choice.name}."
    return None


def initialize_fields() -> dict[str, Any]:
    """What the `initialize` control request adds for a request with tools: the hook."""
    matcher = {"matcher": f"{CLI_TOOL_PREFIX}.*", "hookCallbackIds": [_DEFER_CALLBACK]}
    return {"hooks": {"PreToolUse": [matcher]}}


def server_fields() -> dict[str, Any]:
    """The `mcp_set_servers` control request's fields: the tool server, in the worker."""
    return {"servers": {SERVER_NAME: {"type": "sdk", "name": SERVER_NAME}}}


def answer_cli_request(
    request: dict[str, Any], tools: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The response to a `control_request` the CLI sent (its `request`); None for one this
    worker does not serve (answered as an error)."""
    subtype = request.get("subtype")
    if subtype == "mcp_message" and request.get("server_name") == SERVER_NAME:
        message = request.get("message") or {}
        reply = answer(message, tools)
        # A notification needs no reply, but its control request wants one: acknowledged
        # as the official SDKs acknowledge it.
        acknowledged = {"jsonrpc": "2.0", "result": {}, "id": 0}
        return {"mcp_response": reply if reply is not None else acknowledged}
    if subtype == "hook_callback" and request.get("callback_id") == _DEFER_CALLBACK:
        return _DEFER
    return None


def rename_for_cli(messages: list[dict[str, Any]], tool_names: set[str]) -> list[dict[str, Any]]:
    """History with the client's tool_use names as the CLI knows them."""
    return [_renamed_message(message, tool_names) for message in messages]


def _renamed_message(message: dict[str, Any], tool_names: set[str]) -> dict[str, Any]:
    content = message["content"]
    if isinstance(content, str) or not any(_is_client_tool_use(b, tool_names) for b in content):
        return message
    renamed = [
        {**block, "name": CLI_TOOL_PREFIX + block["name"]}
        if _is_client_tool_use(block, tool_names)
        else block
        for block in content
    ]
    return {**message, "content": renamed}


def _is_client_tool_use(block: dict[str, Any], tool_names: set[str]) -> bool:
    return block.get("type") == "tool_use" and block.get("name") in tool_names


def rename_for_client(event: dict[str, Any]) -> dict[str, Any]:
    """A streamed event with a client tool's name restored (other events unchanged)."""
    if event.get("type") != "content_block_start":
        return event
    block = event.get("content_block") or {}
    name = block.get("name")
    if block.get("type") != "tool_use" or not str(name).startswith(CLI_TOOL_PREFIX):
        return event
    restored = {**block, "name": str(name).removeprefix(CLI_TOOL_PREFIX)}
    return {**event, "content_block": restored}


def _history_uses_tools(request: MessagesRequest) -> bool:
    return any(
        not isinstance(m.content, str)
        and any(b.type in ("tool_use", "tool_result") for b in m.content)
        for m in request.messages
    )
