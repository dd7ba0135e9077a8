"""Enforces `stop_sequences`, which the CLI cannot pass on: the answer ends before the first match.

Text that could be the start of a stop sequence is held back until the next delta shows it is
not. On a match the cutter emits the text before it, closes the block and the message with
`stop_reason: "stop_sequence"`, and the caller stops the CLI. The usage it reports is the
upstream's figure so far, raised to an estimate of the text actually sent (~4 chars a token):
the upstream's final count never comes, as the CLI is stopped.
"""

from __future__ import annotations

import math
from typing import Any

Event = dict[str, Any]
_CHARS_PER_TOKEN = 4


class StopSequenceCutter:
    def __init__(self, stop_sequences: list[str] | None) -> None:
        self._stops = [stop for stop in stop_sequences or [] if stop]
        self._pending: dict[int, str] = {}
        self._emitted_chars = 0
        self._output_tokens = 0
        self.matched: str | None = None

    def feed(self, event: Event) -> list[Event]:
        """The events to send on in place of `event` (none once a stop sequence matched)."""
        if not self._stops or self.matched is not None:
            return [] if self.matched is not None else [event]
        kind = event.get("type")
        if kind == "message_start":
            usage = event.get("message", {}).get("usage") or {}
            self._output_tokens = int(usage.get("output_tokens") or 0)
        elif kind == "content_block_delta" and event["delta"].get("type") == "text_delta":
            return self._on_text(event["index"], event["delta"]["text"])
        elif kind == "content_block_stop" and event["index"] in self._pending:
            rest = self._pending.pop(event["index"])
            return [*self._text_events(event["index"], rest), event]
        elif kind == "content_block_start" and event["content_block"].get("type") == "text":
            self._pending[event["index"]] = ""
        return [event]

    def _on_text(self, index: int, text: str) -> list[Event]:
        buffer = self._pending.get(index, "") + text
        found = [(buffer.find(stop), stop) for stop in self._stops if stop in buffer]
        if found:
            position, stop = min(found)
            self.matched = stop
            self._pending.pop(index, None)
            return [*self._text_events(index, buffer[:position]), *self._closing(index, stop)]
        held = self._longest_stop_prefix_suffix(buffer)
        self._pending[index] = buffer[len(buffer) - held :]
        return self._text_events(index, buffer[: len(buffer) - held])

    def _longest_stop_prefix_suffix(self, text: str) -> int:
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:size]):
                    longest = size
                    break
        return longest

    def _text_events(self, index: int, text: str) -> list[Event]:
        if not text:
            return []
        self._emitted_chars += len(text)
        delta = {"type": "text_delta", "text": text}
        return [{"type": "content_block_delta", "index": index, "delta": delta}]

    def _closing(self, index: int, stop: str) -> list[Event]:
        tokens = max(self._output_tokens, math.ceil(self._emitted_chars / _CHARS_PER_TOKEN), 1)
        return [
            {"type": "content_block_stop", "index": index},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "stop_sequence", "stop_sequence": stop},
                "usage": {"output_tokens": tokens},
            },
            {"type": "message_stop"},
        ]
