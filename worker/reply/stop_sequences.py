"""Enforces `stop_sequences`, which the CLI cannot pass on: the answer ends before the first match.

Matching is one Aho-Corasick automaton over all the stop sequences, fed each text delta once:
time linear in the text, whatever the number of stops (the model bounds them: at most 64, of
at most 256 characters each, shared/wire/messages.py). The match that ends first wins (the one the
model would have stopped at), the longest of those ending at the same character. The automaton's
state is also the longest tail of the text that may still become a stop sequence: exactly that
much is held back until the next delta shows whether it is one.

On a match the cutter emits the text before it, closes the block and the message with
`stop_reason: "stop_sequence"`, and the caller stops the CLI. The usage it reports is the
upstream's figure so far, raised to ccfleet's estimate of the text actually sent
(shared/wire/token_estimate.py): the upstream's final count never comes, as the CLI is stopped.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from shared.wire.token_estimate import chars_tokens

Event = dict[str, Any]


@dataclass
class _Node:
    depth: int
    next: dict[str, int] = field(default_factory=dict)
    fail: int = 0
    stop: str | None = None  # the longest stop sequence ending here, own or via a suffix


class StopAutomaton:
    """Aho-Corasick over the stop sequences; a state is a node index (0: nothing pending)."""

    def __init__(self, stops: list[str]) -> None:
        self._nodes = [_Node(depth=0)]
        for stop in stops:
            self._add(stop)
        self._link()

    def _add(self, stop: str) -> None:
        state = 0
        for char in stop:
            following = self._nodes[state].next.get(char)
            if following is None:
                following = len(self._nodes)
                self._nodes.append(_Node(depth=self._nodes[state].depth + 1))
                self._nodes[state].next[char] = following
            state = following
        self._nodes[state].stop = stop

    def _link(self) -> None:
        queue = deque(self._nodes[0].next.values())
        while queue:
            state = queue.popleft()
            node = self._nodes[state]
            if node.stop is None:
                node.stop = self._nodes[node.fail].stop
            for char, child in node.next.items():
                fallback = node.fail
                while char not in self._nodes[fallback].next and fallback:
                    fallback = self._nodes[fallback].fail
                link = self._nodes[fallback].next.get(char, 0)
                self._nodes[child].fail = link if link != child else 0
                queue.append(child)

    def depth(self, state: int) -> int:
        """How many of the last characters fed may still begin a stop sequence."""
        return self._nodes[state].depth

    def feed(self, state: int, text: str) -> tuple[int, int, str | None]:
        """Feed `text` from `state`: (new state, index in `text` after the match, the stop
        matched), or (state after all of it, len(text), None)."""
        nodes = self._nodes
        for position, char in enumerate(text):
            while char not in nodes[state].next and state:
                state = nodes[state].fail
            state = nodes[state].next.get(char, 0)
            if nodes[state].stop is not None:
                return state, position + 1, nodes[state].stop
        return state, len(text), None


class StopSequenceCutter:
    def __init__(self, stop_sequences: list[str] | None) -> None:
        stops = [stop for stop in stop_sequences or [] if stop]
        self._automaton = StopAutomaton(stops) if stops else None
        self._pending: dict[int, tuple[int, str]] = {}  # block index: (state, held text)
        self._emitted_chars = 0
        self._output_tokens = 0
        self.matched: str | None = None

    def feed(self, event: Event) -> list[Event]:
        """The events to send on in place of `event` (none once a stop sequence matched)."""
        if self._automaton is None or self.matched is not None:
            return [] if self.matched is not None else [event]
        kind = event.get("type")
        if kind == "message_start":
            usage = event.get("message", {}).get("usage") or {}
            self._output_tokens = int(usage.get("output_tokens") or 0)
        elif kind == "content_block_delta" and event["delta"].get("type") == "text_delta":
            return self._on_text(self._automaton, event["index"], event["delta"]["text"])
        elif kind == "content_block_stop" and event["index"] in self._pending:
            _, held = self._pending.pop(event["index"])
            return [*self._text_events(event["index"], held), event]
        elif kind == "content_block_start" and event["content_block"].get("type") == "text":
            self._pending[event["index"]] = (0, "")
        return [event]

    def _on_text(self, automaton: StopAutomaton, index: int, text: str) -> list[Event]:
        state, held = self._pending.get(index, (0, ""))
        state, end, stop = automaton.feed(state, text)
        buffer = held + text[:end]
        if stop is not None:
            self.matched = stop
            self._pending.pop(index, None)
            before = buffer[: len(buffer) - len(stop)]
            return [*self._text_events(index, before), *self._closing(index, stop)]
        keep = automaton.depth(state)
        self._pending[index] = (state, buffer[len(buffer) - keep :] if keep else "")
        return self._text_events(index, buffer[: len(buffer) - keep])

    def _text_events(self, index: int, text: str) -> list[Event]:
        if not text:
            return []
        self._emitted_chars += len(text)
        delta = {"type": "text_delta", "text": text}
        return [{"type": "content_block_delta", "index": index, "delta": delta}]

    def _closing(self, index: int, stop: str) -> list[Event]:
        tokens = max(self._output_tokens, chars_tokens(self._emitted_chars), 1)
        return [
            {"type": "content_block_stop", "index": index},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "stop_sequence", "stop_sequence": stop},
                "usage": {"output_tokens": tokens},
            },
            {"type": "message_stop"},
        ]
