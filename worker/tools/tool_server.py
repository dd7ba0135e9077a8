"""The MCP server that shows the client's tools to the CLI and never runs them.

It lives in the worker: the CLI reaches it over its control channel (an "SDK" MCP server,
`mcp_message` control requests; worker/tools/client_tools.py), so a CLI started ahead of its
request can take the tools too. The CLI lists these tools to the model (as
`mcp__client__<name>`); when the model calls one, the CLI is stopped before the call
(PreToolUse hook answering `defer`, or `--max-turns 1`) and the client gets the tool_use
block to run itself. A `tools/call` that still arrives is answered with an error, never
executed.

Hand-written rather than built on the `mcp` SDK: it answers four methods.
"""

from __future__ import annotations

from typing import Any

SERVER_NAME = "client"
_DEFAULT_PROTOCOL = "2025-06-18"


def _tool_list(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    listed = []
    for tool in tools:
        entry: dict[str, Any] = {"name": tool["name"], "inputSchema": tool["input_schema"]}
        if tool.get("description") is not None:
            entry["description"] = tool["description"]
        listed.append(entry)
    return listed


def answer(request: dict[str, Any], tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The JSON-RPC response to one request (None for notifications)."""
    method = request.get("method")
    if "id" not in request:
        return None
    if method == "initialize":
        protocol = request.get("params", {}).get("protocolVersion", _DEFAULT_PROTOCOL)
        result: dict[str, Any] = {
            "protocolVersion": protocol,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": SERVER_NAME, "version": "1"},
        }
    elif method == "tools/list":
        result = {"tools": _tool_list(tools)}
    elif method == "tools/call":
        text = "This tool runs on the API client, not in ccfleet."
        result = {"content": [{"type": "text", "text": text}], "isError": True}
    elif method == "ping":
        result = {}
    else:
        error = {"code": -32601, "message": f"Method not found: {method}"}
        return {"jsonrpc": "2.0", "id": request["id"], "error": error}
    return {"jsonrpc": "2.0", "id": request["id"], "result": result}
