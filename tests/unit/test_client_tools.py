from __future__ import annotations

from typing import Any

from shared.wire.messages import MessagesRequest
from worker.cli.cache_breakpoints import limit_breakpoints
from worker.tools.client_tools import (
    answer_cli_request,
    rename_for_cli,
    rename_for_client,
    tools_for_cli,
)

TOOL: dict[str, Any] = {
    "name": "lookup",
    "description": "Look up.",
    "input_schema": {"type": "object"},
}


def _request(**fields: object) -> MessagesRequest:
    base: dict[str, object] = {
        "model": "m",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [TOOL],
    }
    return MessagesRequest.model_validate({**base, **fields})


def test_tool_names_are_prefixed_for_the_cli_and_restored_for_the_client() -> None:
    history = [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {}}],
        }
    ]
    assert rename_for_cli(history, {"lookup"})[0]["content"][0]["name"] == "mcp__client__lookup"
    event = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {
            "type": "tool_use",
            "id": "t1",
            "name": "mcp__client__lookup",
            "input": {},
        },
    }
    assert rename_for_client(event)["content_block"]["name"] == "lookup"


def test_tool_choice_none_hides_tools_unless_the_history_uses_them() -> None:
    assert tools_for_cli(_request(tool_choice={"type": "none"})) == []
    with_history = _request(
        tool_choice={"type": "none"},
        messages=[
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "lookup", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r"}],
            },
        ],
    )
    assert [t["name"] for t in tools_for_cli(with_history)] == ["lookup"]


def test_only_the_last_client_cache_breakpoint_is_kept() -> None:
    mark = {"type": "ephemeral"}
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "a", "cache_control": mark}]},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": [{"type": "text", "text": "c", "cache_control": mark}]},
    ]
    limited = limit_breakpoints(messages)
    assert "cache_control" not in limited[0]["content"][0]
    assert limited[2]["content"][0]["cache_control"] == mark
    assert "cache_control" in messages[0]["content"][0], "the input is not modified"


def mcp_message(message: dict[str, object]) -> dict[str, object]:
    return {"subtype": "mcp_message", "server_name": "client", "message": message}


def test_the_tool_server_lists_the_tools_and_refuses_calls() -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18"},
    }
    call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "lookup"}}
    requests: list[dict[str, object]] = [
        initialize,
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        call,
    ]
    replies = [answer_cli_request(mcp_message(r), [TOOL]) for r in requests]
    responses = [reply["mcp_response"] for reply in replies if reply is not None]
    assert [r["id"] for r in responses] == [1, 0, 2, 3], "the notification acknowledged"
    assert responses[0]["result"]["protocolVersion"] == "2025-06-18"
    assert responses[2]["result"]["tools"] == [
        {"name": "lookup", "description": "Look up.", "inputSchema": {"type": "object"}}
    ]
    assert responses[3]["result"]["isError"] is True


def test_the_cli_is_told_to_defer_a_client_tool_and_nothing_else_is_served() -> None:
    hook = {"subtype": "hook_callback", "callback_id": "defer", "input": {}}
    assert answer_cli_request(hook, [TOOL]) == {
        "hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "defer"}
    }
    assert answer_cli_request({"subtype": "can_use_tool", "tool_name": "Bash"}, [TOOL]) is None
    other_server = {"subtype": "mcp_message", "server_name": "other", "message": {"id": 1}}
    assert answer_cli_request(other_server, [TOOL]) is None
