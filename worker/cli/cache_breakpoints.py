"""Keeps the request within the API's limit of 4 cache_control breakpoints.

The CLI adds its own: on 2 system blocks and on the last message. So at most one of the
client's breakpoints in the messages can be kept: the last one, which caches the longest
prefix. The others are removed (docs/api.md: Request fields).

On the last block of the last message the CLI's own breakpoint replaces the client's
(measured, docs/measured-facts.md §13), so the client's there is removed too: the same
upstream request, and a conversation the CLI holds (worker/cli/resident.py) stays what the
client sends back when it moves that breakpoint to its next message, as Claude Code does.
"""

from __future__ import annotations

import copy
from typing import Any

CLIENT_BREAKPOINTS_KEPT = 1


def limit_breakpoints(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    marked = [
        block
        for message in messages
        if not isinstance(message["content"], str)
        for block in message["content"]
        if "cache_control" in block
    ]
    if len(marked) <= CLIENT_BREAKPOINTS_KEPT:
        return messages
    limited = copy.deepcopy(messages)
    kept = 0
    for message in reversed(limited):
        if isinstance(message["content"], str):
            continue
        for block in reversed(message["content"]):
            if "cache_control" in block:
                kept += 1
                if kept > CLIENT_BREAKPOINTS_KEPT:
                    del block["cache_control"]
    return limited


def without_final_breakpoint(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`messages` less the client's breakpoint on the last block of the last message."""
    if not messages or isinstance(messages[-1]["content"], str) or not messages[-1]["content"]:
        return messages
    last_block = messages[-1]["content"][-1]
    if "cache_control" not in last_block:
        return messages
    block = {key: value for key, value in last_block.items() if key != "cache_control"}
    final = {**messages[-1], "content": [*messages[-1]["content"][:-1], block]}
    return [*messages[:-1], final]
