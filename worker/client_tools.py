"""Client-defined tools: shown to the model through an MCP server, never run by the CLI.

The CLI names MCP tools `mcp__<server>__<name>`, so names are mapped both ways: prefixed in
the replayed history, unprefixed in the streamed tool_use blocks the client gets. The CLI is
stopped before it would call a tool: a PreToolUse hook answers `defer` (non-bare runs), and
`--max-turns 1` ends bare runs after the model's turn.
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

from shared.messages import MessagesRequest
from worker.tool_server import SERVER_NAME

CLI_TOOL_PREFIX = f"mcp__{SERVER_NAME}__"

_DEFER_HOOK = {
    "hooks": {
        "PreToolUse": [
            {
                "matcher": f"{CLI_TOOL_PREFIX}.*",
                "hooks": [
                    {
                        "type": "command",
                        "command": "echo '"
                        + orjson.dumps(
                            {
                                "hookSpecificOutput": {
                                    "hookEventName": "PreToolUse",
                                    "permissionDecision": "defer",
                                }
                            }
                        ).decode()
                        + "'",
                    }
                ],
            }
        ]
    }
}


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


def mcp_config(tools_file: str) -> str:
    server = {
        "type": "stdio",
        "command": sys.executable,
        "args": ["-m", "worker.tool_server", tools_file],
    }
    return orjson.dumps({"mcpServers": {SERVER_NAME: server}}).decode()


def defer_hook_settings() -> str:
    return orjson.dumps(_DEFER_HOOK).decode()


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
