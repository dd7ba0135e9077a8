"""Rebuilds a complete Message object from the streamed events, for non-streaming replies."""

from __future__ import annotations

import copy
from typing import Any

import orjson


class MessageBuilder:
    def __init__(self) -> None:
        self.message: dict[str, Any] = {}
        self._partial_json: dict[int, str] = {}

    def apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "message_start":
            self.message = copy.deepcopy(event["message"])
            self.message["content"] = []
        elif kind == "content_block_start":
            self._start_block(event["index"], copy.deepcopy(event["content_block"]))
        elif kind == "content_block_delta":
            self._apply_delta(self.message["content"][event["index"]], event)
        elif kind == "content_block_stop":
            self._finish_block(event["index"])
        elif kind == "message_delta":
            self.message.update(event.get("delta", {}))
            self.message.setdefault("usage", {}).update(event.get("usage") or {})

    def _start_block(self, index: int, block: dict[str, Any]) -> None:
        content: list[dict[str, Any]] = self.message["content"]
        while len(content) <= index:
            content.append({})
        content[index] = block
        if block.get("type") in ("tool_use", "server_tool_use"):
            self._partial_json[index] = ""

    def _apply_delta(self, block: dict[str, Any], event: dict[str, Any]) -> None:
        delta = event["delta"]
        kind = delta.get("type")
        if kind == "text_delta":
            block["text"] = block.get("text", "") + delta["text"]
        elif kind == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + delta["thinking"]
        elif kind == "signature_delta":
            block["signature"] = delta["signature"]
        elif kind == "input_json_delta":
            self._partial_json[event["index"]] += delta["partial_json"]
        elif kind == "citations_delta":
            block.setdefault("citations", []).append(delta["citation"])

    def _finish_block(self, index: int) -> None:
        partial = self._partial_json.pop(index, None)
        if partial is not None:
            self.message["content"][index]["input"] = orjson.loads(partial) if partial else {}
