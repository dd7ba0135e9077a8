"""Anthropic Messages -> OpenAI Chat Completions: a whole Message, or a stream of events.

Text blocks are joined (thinking blocks are left out), tool_use blocks become `tool_calls`
(input as a JSON string), stop_reason becomes finish_reason, and usage counts cache reads
and writes in `prompt_tokens` (cache reads also as `prompt_tokens_details.cached_tokens`).
"""

from __future__ import annotations

from typing import Any

import orjson

Json = dict[str, Any]

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: str | None) -> str:
    return FINISH_REASONS.get(stop_reason or "", "stop")


def to_usage(usage: Json) -> Json:
    """OpenAI usage from Anthropic usage: cache reads and writes are prompt tokens too."""
    cached = usage.get("cache_read_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + cached
    prompt += usage.get("cache_creation_input_tokens") or 0
    completion = usage.get("output_tokens") or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def to_chat_completion(message: Json, *, completion_id: str, created: int) -> Json:
    """A `chat.completion` object from a whole Anthropic Message."""
    blocks: list[Json] = message.get("content") or []
    texts = [block["text"] for block in blocks if block.get("type") == "text"]
    calls = [_tool_call(block) for block in blocks if block.get("type") == "tool_use"]
    reply: Json = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        reply["tool_calls"] = calls
    choice = {
        "index": 0,
        "message": reply,
        "finish_reason": finish_reason(message.get("stop_reason")),
        "logprobs": None,
    }
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": message.get("model", ""),
        "choices": [choice],
        "usage": to_usage(message.get("usage") or {}),
    }


def _tool_call(block: Json) -> Json:
    arguments = orjson.dumps(block.get("input") or {}).decode()
    function = {"name": block["name"], "arguments": arguments}
    return {"id": block["id"], "type": "function", "function": function}


class ChunkTranslator:
    """Anthropic stream events in, `chat.completion.chunk` objects out.

    The finishing chunk waits for `message_stop`, so a stream cut short by an error never
    looks complete; with `include_usage` a last chunk with no choices carries the usage.
    """

    def __init__(
        self, *, completion_id: str, created: int, model: str, include_usage: bool
    ) -> None:
        self.completion_id = completion_id
        self.created = created
        self.model = model
        self.include_usage = include_usage
        self._tool_calls: dict[int, int] = {}  # content block index -> tool call index
        self._stop_reason: str | None = None
        self._usage: Json = {}

    def feed(self, event: Json) -> list[Json]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.model = message.get("model") or self.model
            self._add_usage(message.get("usage"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(event["index"], event["content_block"])
        if kind == "content_block_delta":
            return self._delta(event["index"], event["delta"])
        if kind == "message_delta":
            self._stop_reason = (event.get("delta") or {}).get("stop_reason")
            self._add_usage(event.get("usage"))
        elif kind == "message_stop":
            last = self._chunk({}, finish_reason(self._stop_reason))
            if not self.include_usage:
                return [last]
            return [last, {**self._chunk({}), "choices": [], "usage": to_usage(self._usage)}]
        return []

    def _block_start(self, index: int, block: Json) -> list[Json]:
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if block.get("type") != "tool_use":
            return []
        self._tool_calls[index] = len(self._tool_calls)
        call = _tool_call({**block, "input": None})
        call["function"]["arguments"] = ""
        return [self._chunk({"tool_calls": [{"index": self._tool_calls[index], **call}]})]

    def _delta(self, index: int, delta: Json) -> list[Json]:
        if delta.get("type") == "text_delta":
            return [self._chunk({"content": delta["text"]})]
        if delta.get("type") == "input_json_delta" and index in self._tool_calls:
            function = {"arguments": delta["partial_json"]}
            return [
                self._chunk(
                    {"tool_calls": [{"index": self._tool_calls[index], "function": function}]}
                )
            ]
        return []

    def _add_usage(self, usage: Json | None) -> None:
        self._usage.update({k: v for k, v in (usage or {}).items() if v is not None})

    def _chunk(self, delta: Json, finish: str | None = None) -> Json:
        chunk: Json = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk
