"""Keeps the request within the API's limit of 4 cache_control breakpoints.

The CLI adds its own: on 2 system blocks and on the last message. So at most one of the
client's breakpoints in the messages can be kept: the last one, which caches the longest
prefix. The others are removed (docs/api.md: Request fields).
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
