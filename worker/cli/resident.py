"""Resident conversations: a CLI that answered a turn stays alive, holding its conversation,
so the next turn sends only its new messages instead of replaying the whole history.

A CLI's conversation is named by `conversation_digest`: the client key's name, every request
field but `messages`, `stream` and `metadata` (system prompt, tools, model, thinking,
tool_choice...), and the messages exactly as the CLI got them (worker/cli/command.py
`cli_messages`: tool-use ids, thinking signatures, cache_control and all; a string content as
its one text block), its own reply included. A request continues in a resident CLI when its
messages up to their last assistant message have the digest that CLI holds (`Continuation`);
the user messages after it are what goes in. Anything else (an edited, shortened or compacted
history, another key, other settings) finds no CLI and replays in a fresh one. So a CLI serves
one conversation of one key, in its own workspace; a turn that fails or is cancelled stops its
CLI (worker/reply/answer.py keeps a CLI only after a complete answer).

At most `max_resident` CLIs wait, the least recently used stopped first, each at most
`idle_s`. Measured (docs/measured-facts.md "Long conversations"): the next turn's upstream
request is the one a replay sends, apart from where the CLI's own date reminder sits.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

from shared.wire.messages import MessagesRequest
from worker.cli.process import CliProcess
from worker.cli.workspace import Workspace, remove_workspace

logger = logging.getLogger(__name__)

_CHECK_INTERVAL_S = 1.0
_PAGE_BYTES = 4096
_NOT_SETTINGS = frozenset({"messages", "stream", "metadata"})


def conversation_digest(
    client_key: str, request: MessagesRequest, messages: list[dict[str, Any]]
) -> str:
    """What a CLI holding `messages` (CLI form) for this key and these settings holds."""
    settings = request.model_dump(mode="json", exclude_unset=True, exclude=set(_NOT_SETTINGS))
    canonical = [_canonical(message) for message in messages]
    named = orjson.dumps([client_key, settings, canonical], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(named).hexdigest()


def _canonical(message: dict[str, Any]) -> dict[str, Any]:
    """A string content as the one text block it is to the API: many clients send the model's
    answer back as a string, and the CLI that gave it holds it as a text block."""
    content = message["content"]
    if isinstance(content, str):
        return {**message, "content": [{"type": "text", "text": content}]}
    return message


@dataclass(frozen=True)
class Continuation:
    """How `request` could continue a resident conversation: the digest of its history up to
    its last assistant message, and the messages after that (CLI form) that go in."""

    held: str
    new_messages: list[dict[str, Any]]


def continuation_of(
    client_key: str, request: MessagesRequest, messages: list[dict[str, Any]]
) -> Continuation | None:
    """None for a conversation without an earlier answer (nothing to continue)."""
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
    if last < 0:
        return None
    held = conversation_digest(client_key, request, messages[: last + 1])
    return Continuation(held=held, new_messages=messages[last + 1 :])


@dataclass
class ResidentCli:
    """A CLI between turns: its process (stdin open), its workspace, what it holds."""

    process: CliProcess
    workspace: Workspace
    holds: str
    idle_since: float = 0.0

    async def discard(self) -> None:
        await self.process.stop()
        remove_workspace(self.workspace)


@dataclass
class ResidentStats:
    resident: int = 0
    hits: int = 0
    misses: int = 0
    evicted: int = 0
    rss_bytes: int = 0


class ResidentConversations:
    """This worker's resident CLIs, by the digest of what each holds."""

    def __init__(
        self, *, max_resident: int, idle_s: float, stats: ResidentStats | None = None
    ) -> None:
        self.max_resident = max_resident
        self.idle_s = idle_s
        self._waiting: OrderedDict[str, ResidentCli] = OrderedDict()
        self._stopping: set[asyncio.Task[None]] = set()
        self.stats = stats if stats is not None else ResidentStats()

    def take(self, continuation: Continuation | None) -> ResidentCli | None:
        """The CLI holding `continuation`'s history, now the caller's; None: replay."""
        resident = self._waiting.pop(continuation.held, None) if continuation else None
        if resident is not None and resident.process.returncode is None:
            self.stats.hits += 1
            self._count()
            return resident
        if resident is not None:
            self._waiting[resident.holds] = resident  # dead: the next check stops it
        if continuation is not None:
            self.stats.misses += 1
        return None

    def keep(self, resident: ResidentCli) -> None:
        """Let `resident` wait for its next turn; the least recently used beyond the limit go
        (stopped in tasks of their own: the caller does not wait for them)."""
        resident.idle_since = time.monotonic()
        replaced = self._waiting.pop(resident.holds, None)
        self._waiting[resident.holds] = resident
        if replaced is not None:
            self._stop(replaced)
        while len(self._waiting) > self.max_resident:
            _, oldest = self._waiting.popitem(last=False)
            self.stats.evicted += 1
            self._stop(oldest)
        self._count()

    def pids(self) -> list[int]:
        return [resident.process.pid for resident in self._waiting.values()]

    async def run(self) -> None:
        """Stop the CLIs idle past `idle_s` or dead; owned by the worker's start-up hooks."""
        while True:
            await asyncio.sleep(_CHECK_INTERVAL_S)
            self._drop_dead_and_idle()
            self.stats.rss_bytes = sum(_rss_bytes(pid) for pid in self.pids())

    async def close(self) -> None:
        """Stop every CLI, waiting and stopping, and wait until all are reaped."""
        waiting, self._waiting = self._waiting, OrderedDict()
        self._count()
        for resident in waiting.values():
            self._stop(resident)
        await asyncio.gather(*self._stopping, return_exceptions=True)  # each logs its own

    def _drop_dead_and_idle(self) -> None:
        horizon = time.monotonic() - self.idle_s
        for holds, resident in list(self._waiting.items()):
            if resident.process.returncode is not None or resident.idle_since < horizon:
                del self._waiting[holds]
                self._stop(resident)
        self._count()

    def _stop(self, resident: ResidentCli) -> None:
        """Stop `resident` (SIGTERM, the grace, SIGKILL, reaped; its workspace removed) in a
        task of its own, kept here until it ends and awaited by `close`. A job that evicts a
        CLI must not wait for it: a job holds its slot until it returns, and a worker whose
        heartbeat shows no free slot is not offered its conversations' next turns
        (docs/benchmarks.md "Why a few follow-ups miss")."""
        task = asyncio.create_task(resident.discard(), name=f"stop-cli-{resident.process.pid}")
        self._stopping.add(task)
        task.add_done_callback(self._stopped)

    def _stopped(self, task: asyncio.Task[None]) -> None:
        self._stopping.discard(task)
        if not task.cancelled() and (failure := task.exception()) is not None:
            logger.error("stopping a resident CLI failed", exc_info=failure)

    def _count(self) -> None:
        self.stats.resident = len(self._waiting)


def _rss_bytes(pid: int) -> int:
    """Resident memory of one process (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0


class ReplyRecorder:
    """The assistant message a CLI added to its conversation, rebuilt from the raw upstream
    events it streamed (tool names as the CLI has them): what the client will send back."""

    def __init__(self) -> None:
        self._blocks: dict[int, dict[str, Any]] = {}
        self._partial_json: dict[int, list[str]] = {}

    def feed(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        index = event.get("index")
        if not isinstance(index, int):
            return
        if kind == "content_block_start":
            self._blocks[index] = _opened_block(event.get("content_block") or {})
        elif kind == "content_block_delta" and index in self._blocks:
            self._add_delta(index, event.get("delta") or {})

    def message(self) -> dict[str, Any]:
        content = []
        for index in sorted(self._blocks):
            block = self._blocks[index]
            if block.get("type") == "tool_use":
                pieces = "".join(self._partial_json.get(index, []))
                block = {**block, "input": orjson.loads(pieces) if pieces else block.get("input")}
            content.append(block)
        return {"role": "assistant", "content": content}

    def ends_with_tool_use(self) -> bool:
        return any(block.get("type") == "tool_use" for block in self._blocks.values())

    def _add_delta(self, index: int, delta: dict[str, Any]) -> None:
        block = self._blocks[index]
        kind = delta.get("type")
        if kind == "text_delta":
            block["text"] = block.get("text", "") + delta.get("text", "")
        elif kind == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
        elif kind == "signature_delta":
            block["signature"] = block.get("signature", "") + delta.get("signature", "")
        elif kind == "input_json_delta":
            self._partial_json.setdefault(index, []).append(delta.get("partial_json", ""))
        elif kind == "citations_delta":
            block["citations"] = [*(block.get("citations") or []), delta.get("citation")]


def _opened_block(start: dict[str, Any]) -> dict[str, Any]:
    """A block as a streaming client rebuilds it (as the SDKs accumulate): its start, then its
    deltas added. A field this does not know makes the client's echo differ: a replay, never
    a wrong continuation."""
    return dict(start)
