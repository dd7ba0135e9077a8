"""A fake Anthropic Messages API server for tests ("fake upstream").

The real ``claude`` CLI is pointed at it with ``ANTHROPIC_BASE_URL=<upstream.url>``. Replies are
scripted (a FIFO of :data:`Reply` values, or a responder function), and every request is recorded.
The server is a Starlette app under uvicorn on 127.0.0.1 (free port) in a background thread, so
sync and async tests can both use it::

    with FakeUpstream() as upstream:
        upstream.enqueue(TextReply("Hi there."), ErrorReply(529, "overloaded_error", "Overloaded"))
        ...  # run the CLI with ANTHROPIC_BASE_URL=upstream.url
        assert upstream.requests[0].body["model"] == "claude-sonnet-5-5"

Each account's utilisation (:attr:`FakeUpstream.usage`, keyed by the token the CLI sends) goes
out on every reply as Anthropic's unified rate-limit headers (:class:`AccountUsage`), and can
rise with each request; an account at 100 % is refused with 429 ``rejected``.

``GET /v1/models`` lists :attr:`FakeUpstream.models` (set it to script another list), paged
with ``limit`` and ``after_id`` as the API does; those requests are recorded apart, in
:attr:`FakeUpstream.model_list_requests`, so ``requests`` holds what the CLI sent.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

JsonDict = dict[str, Any]
DEFAULT_TEXT = "Hello from the fake upstream."


class _ClosingServer(uvicorn.Server):
    """uvicorn's server, whose shutdown also ends the connections its grace left open. A reply
    stalled on a client that reads nothing has its task cancelled, but its transport closes
    only once its buffer drains, so never: the loop then ends under it (uvloop fails to close)
    and the collector warns of it later, in whatever test runs then."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        for connection in list(self.server_state.connections):
            connection.transport.abort()
        await asyncio.sleep(0)  # an aborted transport is closed on the loop's next turn


@dataclass
class TextBlock:
    text: str


@dataclass
class ThinkingBlock:
    """Streamed as thinking_delta chunks, then one signature_delta."""

    thinking: str
    signature: str = "sig_fake"


@dataclass
class RedactedThinkingBlock:
    data: str


@dataclass
class ToolUseBlock:
    """Streamed as content_block_start with ``input: {}``, then input_json_delta pieces."""

    id: str
    name: str
    input: JsonDict


Block = TextBlock | ThinkingBlock | RedactedThinkingBlock | ToolUseBlock


@dataclass
class BlocksReply:
    """A complete message; ``stop_reason`` None: "tool_use" if a tool is used, else "end_turn"."""

    blocks: list[Block] = field(default_factory=list)
    stop_reason: str | None = None
    delay_s: float = 0.0  # sleep between streamed chunks
    chunk_chars: int = 8
    model: str | None = None  # None: echo the request's model
    input_tokens: int = 12
    output_tokens: int | None = None  # None: estimated from the content length
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass
class TextReply:
    """A one-text-block message, streamed in ``chunk_chars`` pieces."""

    text: str = DEFAULT_TEXT
    chunk_chars: int = 8
    delay_s: float = 0.0
    stop_reason: str = "end_turn"
    model: str | None = None
    input_tokens: int = 12
    output_tokens: int | None = None
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def as_blocks(self) -> BlocksReply:
        return BlocksReply(
            [TextBlock(self.text)],
            self.stop_reason,
            self.delay_s,
            self.chunk_chars,
            self.model,
            self.input_tokens,
            self.output_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
        )


@dataclass
class ErrorReply:
    """A plain HTTP error before any byte of the stream (e.g. 429 with ``retry-after``)."""

    status: int
    error_type: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


def subscription_limit_reply(resets_at: float) -> ErrorReply:
    """A subscription account at its 5-hour limit until `resets_at` (epoch seconds), with the
    headers the CLI turns into a `rate_limit_event` (docs/measured-facts.md §4)."""
    return ErrorReply(
        429,
        "rate_limit_error",
        "You have reached your usage limit.",
        headers={
            "anthropic-ratelimit-unified-status": "rejected",
            "anthropic-ratelimit-unified-reset": str(int(resets_at)),
            "anthropic-ratelimit-unified-representative-claim": "five_hour",
        },
    )


def unified_status(utilization: float) -> str:
    """A window's status as the upstream states it: a warning past 80 %, refused at 100 %."""
    if utilization >= 1.0:
        return "rejected"
    return "allowed_warning" if utilization >= WARNING_UTILIZATION else "allowed"


WARNING_UTILIZATION = 0.8


@dataclass
class AccountUsage:
    """One account's subscription windows as the upstream reports them on every reply (the
    `anthropic-ratelimit-unified-*` headers, docs/measured-facts.md): `five_hour` and
    `seven_day` utilisation (0..1), each rising by `rise_per_request` after every request."""

    five_hour: float = 0.0
    seven_day: float = 0.0
    rise_per_request: float = 0.0
    five_hour_reset_s: float = field(default_factory=lambda: time.time() + 3600)
    seven_day_reset_s: float = field(default_factory=lambda: time.time() + 7 * 86400)

    @property
    def rejected(self) -> bool:
        return max(self.five_hour, self.seven_day) >= 1.0

    def headers(self) -> dict[str, str]:
        windows = {
            "5h": (self.five_hour, self.five_hour_reset_s),
            "7d": (self.seven_day, self.seven_day_reset_s),
        }
        tightest = "5h" if self.five_hour >= self.seven_day else "7d"
        headers = {
            "anthropic-ratelimit-unified-status": unified_status(windows[tightest][0]),
            "anthropic-ratelimit-unified-reset": str(int(windows[tightest][1])),
            "anthropic-ratelimit-unified-representative-claim": (
                "five_hour" if tightest == "5h" else "seven_day"
            ),
        }
        for name, (utilization, reset_s) in windows.items():
            prefix = f"anthropic-ratelimit-unified-{name}"
            headers[f"{prefix}-status"] = unified_status(utilization)
            headers[f"{prefix}-utilization"] = f"{utilization:.4f}"
            headers[f"{prefix}-reset"] = str(int(reset_s))
        return headers

    def spend(self) -> None:
        self.five_hour = round(self.five_hour + self.rise_per_request, 6)
        self.seven_day = round(self.seven_day + self.rise_per_request / 4, 6)


@dataclass
class MidStreamErrorReply:
    """HTTP 200, message_start and some text, then ``event: error`` and the connection closes."""

    text_before: str = "Partial "
    error_type: str = "overloaded_error"
    message: str = "Overloaded"


@dataclass
class HangReply:
    """Sends message_start, then waits ``seconds`` or until ``until`` is set (then finishes
    with ``text``): a test holds a request open for as long as its next step needs."""

    seconds: float = 3600.0
    text: str = DEFAULT_TEXT
    until: threading.Event | None = None


@dataclass
class DelayedReply:
    """Sends nothing for ``seconds`` (not even headers), then answers with ``then``."""

    seconds: float
    then: TextReply | BlocksReply | ErrorReply = field(default_factory=TextReply)


Reply = TextReply | BlocksReply | ErrorReply | MidStreamErrorReply | HangReply | DelayedReply


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lowercased
    body: JsonDict
    disconnected: bool = False  # the client closed the connection before the reply ended


Responder = Callable[[RecordedRequest], Reply | None]


def _sse(event: JsonDict) -> str:
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), max(1, size))] or [""]


def _block_json(block: Block) -> JsonDict:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ThinkingBlock):
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    if isinstance(block, RedactedThinkingBlock):
        return {"type": "redacted_thinking", "data": block.data}
    return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}


def _block_events(index: int, block: Block, size: int) -> list[JsonDict]:
    """content_block_start, its deltas and content_block_stop, as the real API streams them."""
    start = _block_json(block)
    deltas: list[JsonDict] = []
    if isinstance(block, TextBlock):
        start["text"] = ""
        deltas = [{"type": "text_delta", "text": c} for c in _chunks(block.text, size)]
    elif isinstance(block, ThinkingBlock):
        start.update(thinking="", signature="")
        deltas = [{"type": "thinking_delta", "thinking": c} for c in _chunks(block.thinking, size)]
        deltas.append({"type": "signature_delta", "signature": block.signature})
    elif isinstance(block, ToolUseBlock):
        start["input"] = {}
        raw = json.dumps(block.input, separators=(",", ":"))
        deltas = [{"type": "input_json_delta", "partial_json": c} for c in _chunks(raw, size)]
    events: list[JsonDict] = [
        {"type": "content_block_start", "index": index, "content_block": start}
    ]
    events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
    return [*events, {"type": "content_block_stop", "index": index}]


def _usage(input_tokens: int, output_tokens: int, reply: BlocksReply | None = None) -> JsonDict:
    """What the upstream bills: the reply's cache reads and writes, when it has them."""
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": reply.cache_write_tokens if reply else 0,
        "cache_read_input_tokens": reply.cache_read_tokens if reply else 0,
        "output_tokens": output_tokens,
    }


def _message(model: str, reply: BlocksReply | None = None) -> JsonDict:
    """The message object: empty (for message_start) or complete (non-streaming reply)."""
    msg: JsonDict = {
        "id": f"msg_fake_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _usage(12, 1),
    }
    if reply is not None:
        msg.update(
            model=reply.model or model,
            content=[_block_json(b) for b in reply.blocks],
            stop_reason=_stop_reason(reply),
            usage=_usage(reply.input_tokens, _output_tokens(reply), reply),
        )
    return msg


def _stop_reason(reply: BlocksReply) -> str:
    if reply.stop_reason is not None:
        return reply.stop_reason
    return "tool_use" if any(isinstance(b, ToolUseBlock) for b in reply.blocks) else "end_turn"


def _output_tokens(reply: BlocksReply) -> int:
    if reply.output_tokens is not None:
        return reply.output_tokens
    return max(1, sum(len(_block_text(b)) for b in reply.blocks) // 4)


def _block_text(block: Block) -> str:
    match block:
        case TextBlock(text=s) | ThinkingBlock(thinking=s) | RedactedThinkingBlock(data=s):
            return s
    return json.dumps(block.input)


def model_object(model_id: str, display_name: str, created_at: str) -> JsonDict:
    return {"type": "model", "id": model_id, "display_name": display_name, "created_at": created_at}


DEFAULT_MODELS: tuple[JsonDict, ...] = (
    model_object("claude-fable-5-2", "Claude Fable 5.2", "2026-11-09T00:00:00Z"),
    model_object("claude-opus-5-5", "Claude Opus 5.5", "2026-09-22T00:00:00Z"),
    model_object("claude-sonnet-5-5", "Claude Sonnet 5.5", "2026-09-28T00:00:00Z"),
    model_object("claude-haiku-5-5", "Claude Haiku 5.5", "2026-10-07T00:00:00Z"),
)


def _request_id() -> str:
    return f"req_fake{uuid.uuid4().hex[:20]}"


def _error_body(error_type: str, message: str) -> JsonDict:
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": _request_id(),
    }


class FakeUpstream:
    """A scripted fake of ``POST /v1/messages`` (+ ``count_tokens``, ``GET /v1/models``) that
    records every request."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        """``host``: the address to listen on (tests/containers: a Docker bridge's gateway)."""
        self.host = host
        self.requests: list[RecordedRequest] = []
        self.models: list[JsonDict] = list(DEFAULT_MODELS)
        self.model_list_requests: list[RecordedRequest] = []
        self.models_error: ErrorReply | None = None  # set: GET /v1/models fails with it
        self.usage: dict[str, AccountUsage] = {}
        """By the token a request carries (bearer or x-api-key): its account's windows."""
        self.rejections = 0  # requests refused because their account was at 100 %
        self._replies: deque[Reply] = deque()
        self._responder: Responder | None = None
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.app = Starlette(
            routes=[
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/messages/count_tokens", self._count_tokens, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route(
                    "/{path:path}",
                    self._not_found,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"],
                ),
            ]
        )

    # -- scripting and inspection (any thread) ---------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def disconnects(self) -> int:
        with self._cond:
            return sum(r.disconnected for r in self.requests)

    def enqueue(self, *replies: Reply) -> None:
        """Append replies to the FIFO script; when it is empty a default TextReply answers."""
        with self._cond:
            self._replies.extend(replies)

    def set_responder(self, fn: Responder | None) -> None:
        """``fn`` is consulted before the FIFO; returning None falls through to it."""
        with self._cond:
            self._responder = fn

    def wait_for_requests(self, n: int, timeout_s: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.requests) >= n, timeout=timeout_s)

    def reset(self) -> None:
        with self._cond:
            self.requests.clear()
            self._replies.clear()
            self._responder = None
            self.models = list(DEFAULT_MODELS)
            self.model_list_requests.clear()
            self.models_error = None
            self.usage.clear()
            self.rejections = 0

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> FakeUpstream:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = _ClosingServer(config)
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"fake-upstream-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10.0
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake upstream did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends any HangReply at once
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10.0)
        self._server = self._thread = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- server side (event-loop thread) -------------------------------------------------------
    async def _record(
        self, request: Request, *, into: list[RecordedRequest] | None = None
    ) -> RecordedRequest:
        try:
            body = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError:
            body = {"_invalid_json": True}
        recorded = RecordedRequest(
            request.method,
            request.url.path,
            dict(request.query_params),
            {k.lower(): v for k, v in request.headers.items()},
            body if isinstance(body, dict) else {"_body": body},
        )
        with self._cond:
            (self.requests if into is None else into).append(recorded)
            self._cond.notify_all()
        return recorded

    def _next_reply(self, recorded: RecordedRequest) -> Reply:
        with self._cond:
            responder = self._responder
        reply = responder(recorded) if responder is not None else None
        with self._cond:
            if reply is None:
                reply = self._replies.popleft() if self._replies else TextReply()
        return reply

    async def _not_found(self, request: Request) -> Response:
        await self._record(request)
        return self._error(ErrorReply(404, "not_found_error", f"Not found: {request.url.path}"))

    async def _count_tokens(self, request: Request) -> Response:
        body = (await self._record(request)).body
        size = len(json.dumps([body.get("system"), body.get("messages"), body.get("tools")]))
        return JSONResponse(
            {"input_tokens": max(1, size // 4)}, headers={"request-id": _request_id()}
        )

    async def _models(self, request: Request) -> Response:
        query = (await self._record(request, into=self.model_list_requests)).query
        with self._cond:
            models, error = list(self.models), self.models_error
        if error is not None:
            return self._error(error)
        ids = [m["id"] for m in models]
        start = ids.index(query["after_id"]) + 1 if query.get("after_id") in ids else 0
        page = models[start : start + int(query.get("limit", "20"))]
        body = {
            "data": page,
            "has_more": start + len(page) < len(models),
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }
        return JSONResponse(body, headers={"request-id": _request_id()})

    def _account_headers(self, recorded: RecordedRequest) -> tuple[dict[str, str], bool]:
        """The unified headers of the request's account (then its usage rises), and whether
        it is refused for being at its limit."""
        headers = recorded.headers
        token = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
        with self._cond:
            usage = self.usage.get(token)
            if usage is None:
                return {}, False
            sent, rejected = usage.headers(), usage.rejected
            if rejected:
                self.rejections += 1
            else:
                usage.spend()
            return sent, rejected

    async def _messages(self, request: Request) -> Response:
        recorded = await self._record(request)
        account_headers, rejected = self._account_headers(recorded)
        reply = self._next_reply(recorded)
        if rejected:
            reply = ErrorReply(429, "rate_limit_error", "You have reached your usage limit.")
        model = str(recorded.body.get("model", "claude-fake"))
        headers = {"request-id": _request_id(), **account_headers}
        if isinstance(reply, DelayedReply):
            await self._hang(reply.seconds, recorded, request)
            reply = reply.then
        if isinstance(reply, ErrorReply):
            return self._error(reply, account_headers)
        if isinstance(reply, TextReply):
            reply = reply.as_blocks()
        if not recorded.body.get("stream"):
            if isinstance(reply, MidStreamErrorReply):
                status = 529 if reply.error_type == "overloaded_error" else 500
                return self._error(ErrorReply(status, reply.error_type, reply.message))
            if isinstance(reply, HangReply):
                await self._hang(reply.seconds, recorded, request, until=reply.until)
                reply = TextReply(reply.text).as_blocks()
            return JSONResponse(_message(model, reply), headers=headers)
        return StreamingResponse(
            self._stream(reply, model, recorded), headers=headers, media_type="text/event-stream"
        )

    def _error(self, reply: ErrorReply, extra: dict[str, str] | None = None) -> Response:
        body = _error_body(reply.error_type, reply.message)
        headers = {"request-id": body["request_id"], **(extra or {}), **reply.headers}
        return JSONResponse(body, reply.status, headers=headers)

    async def _hang(
        self,
        seconds: float,
        recorded: RecordedRequest,
        request: Request | None,
        *,
        until: threading.Event | None = None,
    ) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._stopping.is_set():
            if until is not None and until.is_set():
                return
            await asyncio.sleep(0.02)
            if request is not None and await request.is_disconnected():
                recorded.disconnected = True
                return

    async def _stream(
        self,
        reply: BlocksReply | MidStreamErrorReply | HangReply,
        model: str,
        recorded: RecordedRequest,
    ) -> AsyncIterator[str]:
        finished = False
        try:
            start = _message(model)
            if isinstance(reply, BlocksReply):
                start.update(model=reply.model or model, usage=_usage(reply.input_tokens, 1, reply))
            yield _sse({"type": "message_start", "message": start})
            if isinstance(reply, HangReply):
                # A disconnect cancels this task.
                await self._hang(reply.seconds, recorded, None, until=reply.until)
                reply = TextReply(reply.text).as_blocks()
            yield _sse({"type": "ping"})
            if isinstance(reply, MidStreamErrorReply):
                for event in _block_events(0, TextBlock(reply.text_before), 8)[:-1]:
                    yield _sse(event)
                yield _sse(_error_body(reply.error_type, reply.message))
                finished = True
                return
            for index, block in enumerate(reply.blocks):
                for event in _block_events(index, block, reply.chunk_chars):
                    if reply.delay_s > 0 and event["type"] == "content_block_delta":
                        await asyncio.sleep(reply.delay_s)
                    yield _sse(event)
            usage = _usage(reply.input_tokens, _output_tokens(reply), reply)
            yield _sse(
                {
                    "type": "message_delta",
                    "usage": usage,
                    "delta": {"stop_reason": _stop_reason(reply), "stop_sequence": None},
                }
            )
            yield _sse({"type": "message_stop"})
            finished = True
        finally:
            if not finished:
                recorded.disconnected = True
