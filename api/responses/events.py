"""Anthropic stream events in, Responses API events and the response object out.

One translator serves both replies: a stream sends its events, a non-streaming reply feeds the
same events and sends the final `response`. Each content block is one output item: text -> a
`message` with one `output_text` part, thinking -> a `reasoning` item (the thinking as its
summary; with `include: ["reasoning.encrypted_content"]` the block and its signature as
`encrypted_content`, which translation.py replays), tool_use -> a `function_call` named as the
client named it, or a `custom_tool_call` for a custom tool (its input whole, at its end: the
model's partial JSON is not yet the string). Every event carries `sequence_number` (0, 1,
...), and the order is the one the openai SDK's `responses.stream()` checks: `response.created`,
`response.in_progress`, `output_item.added` before its content, `content_part.added` before its
deltas, then the done events, and last `response.completed` (`response.incomplete` when the
output limit cut it; `response.failed` when the job failed). A background stream starts as
OpenAI's does, before its job has: `response.created` and `response.queued`, status `queued`.
Codex needs each `output_item.done` to carry the whole item: it keeps those, not the deltas.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from api.responses.request import ResponsesRequest
from api.responses.translation import CUSTOM_INPUT, ToolNames, encode_thinking

Json = dict[str, Any]


def response_id_for(job_id: str) -> str:
    """The id of the response a job answers: the same whenever its stream is replayed (a
    resume, a background poll), and no way back to the job id (which lets its holder resume
    the stream)."""
    return "resp_" + hashlib.sha256(f"response:{job_id}".encode()).hexdigest()[:32]


def response_object(request: ResponsesRequest, response_id: str) -> Json:
    """The response as it starts: the request's settings echoed, no output yet."""
    reasoning = request.reasoning
    fmt = request.text.format if request.text and request.text.format else None
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "background": bool(request.background),
        "error": None,
        "incomplete_details": None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "model": request.model,
        "output": [],
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": request.previous_response_id,
        "reasoning": {
            "effort": reasoning.effort if reasoning else None,
            "summary": reasoning.summary if reasoning else None,
        },
        "store": request.store is not False,
        "temperature": request.temperature,
        "text": {"format": fmt.model_dump(by_alias=True) if fmt else {"type": "text"}},
        "tool_choice": _echo(request.tool_choice) or "auto",
        "tools": [_echo(tool) for tool in request.tools or []],
        "top_p": request.top_p,
        "truncation": request.truncation or "disabled",
        "usage": None,
        "user": request.user,
        "metadata": request.metadata or {},
    }


def _echo(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    return value


def to_usage(usage: Json) -> Json:
    """Responses usage from Anthropic usage: cache reads and writes are input tokens too."""
    cached = usage.get("cache_read_input_tokens") or 0
    input_tokens = (usage.get("input_tokens") or 0) + cached
    input_tokens += usage.get("cache_creation_input_tokens") or 0
    output_tokens = usage.get("output_tokens") or 0
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def _custom_input(arguments: str) -> str:
    """A custom tool's input from the model's arguments, `{"input": ...}` (anything else as
    it came: the client's tool judges it)."""
    try:
        parsed = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return arguments
    value = parsed.get(CUSTOM_INPUT) if isinstance(parsed, dict) else None
    return value if isinstance(value, str) else arguments


@dataclass
class _OpenItem:
    """The output item of the content block being streamed."""

    output_index: int
    item: Json
    text: list[str] = field(default_factory=list)
    block: Json = field(default_factory=dict)  # a thinking block, for encrypted_content


class ResponseTranslator:
    def __init__(self, response: Json, names: ToolNames, *, encrypted_reasoning: bool) -> None:
        self.response = response
        self._names = names
        self._encrypted_reasoning = encrypted_reasoning
        self._sequence = 0
        self._open: _OpenItem | None = None
        self._stop_reason: str | None = None
        self._usage: Json = {}

    @property
    def done(self) -> bool:
        return self.response["status"] not in ("queued", "in_progress")

    def queued(self) -> list[Json]:
        """A background stream's first events, sent before its job has started (as OpenAI
        sends them): `response.created` and `response.queued`, the response `queued`; the
        job's first chunk then brings `response.in_progress`."""
        self.response["status"] = "queued"
        return [self._event("response.created"), self._event("response.queued")]

    def _item_id(self, prefix: str, output_index: int) -> str:
        """An output item's id, the same whenever the job is replayed."""
        named = f"{self.response['id']}:{output_index}".encode()
        return f"{prefix}_{hashlib.sha256(named).hexdigest()[:32]}"

    def feed(self, event: Json) -> list[Json]:
        kind = event.get("type")
        if kind == "message_start":
            self._add_usage((event.get("message") or {}).get("usage"))
            return self._in_progress()
        if kind == "content_block_start":
            return self._start(event["content_block"])
        if kind == "content_block_delta":
            return self._delta(event["delta"])
        if kind == "content_block_stop":
            return self._stop()
        if kind == "message_delta":
            self._stop_reason = (event.get("delta") or {}).get("stop_reason")
            self._add_usage(event.get("usage"))
        elif kind == "message_stop":
            return [self._finish()]
        return []

    def _in_progress(self) -> list[Json]:
        """`response.in_progress`, after `response.created` unless queued() sent it."""
        sent_created = self.response["status"] == "queued"
        created = [] if sent_created else [self._event("response.created")]
        self.response["status"] = "in_progress"
        return [*created, self._event("response.in_progress")]

    def failed(self, error: Json) -> list[Json]:
        """The stream's end when the job failed: `response.failed` with the error."""
        self.response.update(
            status="failed",
            error={"code": error["code"] or error["type"], "message": error["message"]},
        )
        return [self._event("response.failed")]

    def _event(self, kind: str, **fields: Any) -> Json:
        if kind.startswith("response.") and not fields:
            fields = {"response": self.response}
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        snapshot: Json = orjson.loads(orjson.dumps(event))  # the response changes on
        return snapshot

    def _start(self, block: Json) -> list[Json]:
        kind = block.get("type")
        index = len(self.response["output"])
        if kind == "text":
            item = {
                "id": self._item_id("msg", index),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            self._open = _OpenItem(index, item)
            events = [self._added(), self._part_event("response.content_part.added", "")]
            return events + (
                self._delta({"type": "text_delta", "text": block["text"]})
                if block.get("text")
                else []
            )
        if kind in ("thinking", "redacted_thinking"):
            item = {"id": self._item_id("rs", index), "type": "reasoning", "summary": []}
            self._open = _OpenItem(index, item, block=dict(block))
            if kind == "redacted_thinking":
                return [self._added()]
            return [self._added(), self._summary_event("response.reasoning_summary_part.added")]
        if kind == "tool_use":
            self._open = _OpenItem(index, self._call_item(block, index))
            return [self._added()]
        self._open = None  # a block the client has no item for
        return []

    def _call_item(self, block: Json, index: int) -> Json:
        """A tool_use block's item, named as the client named its tool: a `custom_tool_call`
        for a custom tool, a `function_call` for any other."""
        name, namespace = self._names.client_name(block["name"])
        if block["name"] in self._names.custom:
            item: Json = {"id": self._item_id("ctc", index), "type": "custom_tool_call"}
            fields: Json = {"input": ""}
        else:
            item = {"id": self._item_id("fc", index), "type": "function_call"}
            fields = {"status": "in_progress", "arguments": ""}
        item.update(call_id=block["id"], name=name, **fields)
        if namespace:
            item["namespace"] = namespace
        return item

    def _added(self) -> Json:
        assert self._open is not None
        return self._event(
            "response.output_item.added",
            output_index=self._open.output_index,
            item=self._open.item,
        )

    def _delta(self, delta: Json) -> list[Json]:
        current = self._open
        if current is None:
            return []
        kind = delta.get("type")
        if kind == "text_delta":
            current.text.append(delta["text"])
            return [
                self._item_event(
                    "response.output_text.delta", content_index=0, delta=delta["text"], logprobs=[]
                )
            ]
        if kind == "thinking_delta":
            current.text.append(delta["thinking"])
            current.block["thinking"] = current.block.get("thinking", "") + delta["thinking"]
            return [
                self._item_event(
                    "response.reasoning_summary_text.delta",
                    summary_index=0,
                    delta=delta["thinking"],
                )
            ]
        if kind == "signature_delta":
            current.block["signature"] = delta["signature"]
        elif kind == "input_json_delta":
            current.text.append(delta["partial_json"])
            if current.item["type"] == "custom_tool_call":
                return []  # its input is sent whole, once the JSON holding it is
            return [
                self._item_event(
                    "response.function_call_arguments.delta", delta=delta["partial_json"]
                )
            ]
        return []

    def _item_event(self, kind: str, **fields: Any) -> Json:
        assert self._open is not None
        return self._event(
            kind, item_id=self._open.item["id"], output_index=self._open.output_index, **fields
        )

    def _part_event(self, kind: str, text: str) -> Json:
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        return self._item_event(kind, content_index=0, part=part)

    def _summary_event(self, kind: str, text: str = "") -> Json:
        part = {"type": "summary_text", "text": text}
        return self._item_event(kind, summary_index=0, part=part)

    def _stop(self) -> list[Json]:
        """The open item's done events; it joins the response's output."""
        current = self._open
        if current is None:
            return []
        item = current.item
        events = self._content_done(current, "".join(current.text))
        if "status" in item:
            item["status"] = "completed"
        self.response["output"].append(item)
        events.append(
            self._event("response.output_item.done", output_index=current.output_index, item=item)
        )
        self._open = None
        return events

    def _content_done(self, current: _OpenItem, text: str) -> list[Json]:
        item = current.item
        if item["type"] == "reasoning":
            return self._reasoning_done(current, text)
        if item["type"] == "custom_tool_call":
            item["input"] = _custom_input(text)
            delta = self._item_event("response.custom_tool_call_input.delta", delta=item["input"])
            done = self._item_event("response.custom_tool_call_input.done", input=item["input"])
            return [delta, done]
        if item["type"] == "function_call":
            item["arguments"] = text
            return [
                self._item_event(
                    "response.function_call_arguments.done", arguments=text, name=item["name"]
                )
            ]
        done = self._item_event(
            "response.output_text.done", content_index=0, text=text, logprobs=[]
        )
        part = self._part_event("response.content_part.done", text)
        item["content"] = [part["part"]]
        return [done, part]

    def _reasoning_done(self, current: _OpenItem, text: str) -> list[Json]:
        item = current.item
        if self._encrypted_reasoning:
            item["encrypted_content"] = encode_thinking(current.block)
        if current.block.get("type") == "redacted_thinking":
            return []
        item["summary"] = [{"type": "summary_text", "text": text}]
        return [
            self._item_event("response.reasoning_summary_text.done", summary_index=0, text=text),
            self._summary_event("response.reasoning_summary_part.done", text),
        ]

    def _add_usage(self, usage: Json | None) -> None:
        self._usage.update({k: v for k, v in (usage or {}).items() if v is not None})

    def _finish(self) -> Json:
        self.response["usage"] = to_usage(self._usage)
        if self._stop_reason in ("max_tokens", "model_context_window_exceeded"):
            self.response["status"] = "incomplete"
            self.response["incomplete_details"] = {"reason": "max_output_tokens"}
            return self._event("response.incomplete")
        self.response["status"] = "completed"
        return self._event("response.completed")
