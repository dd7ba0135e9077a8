"""MessageBuilder turns a stream of Messages API events back into one Message object."""

from __future__ import annotations

import copy
from typing import Any

from shared.wire.message_builder import MessageBuilder

Event = dict[str, Any]


def message_start(**usage: int) -> Event:
    return {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-5-5",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage or {"input_tokens": 12, "output_tokens": 1},
        },
    }


def block_start(index: int, block: dict[str, Any]) -> Event:
    return {"type": "content_block_start", "index": index, "content_block": block}


def delta(index: int, **fields: Any) -> Event:
    return {"type": "content_block_delta", "index": index, "delta": fields}


def block_stop(index: int) -> Event:
    return {"type": "content_block_stop", "index": index}


def message_delta(stop_reason: str, stop_sequence: str | None = None, **usage: int) -> Event:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
        "usage": usage,
    }


MESSAGE_STOP: Event = {"type": "message_stop"}


def built(*events: Event) -> dict[str, Any]:
    builder = MessageBuilder()
    for event in events:
        builder.apply(event)
    return builder.message


def test_text_deltas_are_joined_into_one_text_block() -> None:
    message = built(
        message_start(),
        block_start(0, {"type": "text", "text": ""}),
        delta(0, type="text_delta", text="Hello"),
        delta(0, type="text_delta", text=", "),
        delta(0, type="text_delta", text="world."),
        block_stop(0),
        message_delta("end_turn", output_tokens=5),
        MESSAGE_STOP,
    )
    assert message["content"] == [{"type": "text", "text": "Hello, world."}]
    assert message["id"] == "msg_1"
    assert message["role"] == "assistant"
    assert message["model"] == "claude-sonnet-5-5"


def test_thinking_deltas_and_the_signature_make_one_thinking_block() -> None:
    message = built(
        message_start(),
        block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        delta(0, type="thinking_delta", thinking="Let me "),
        delta(0, type="thinking_delta", thinking="think."),
        delta(0, type="signature_delta", signature="EqQBCkYIBxgCKkBsig"),
        block_stop(0),
        block_start(1, {"type": "text", "text": ""}),
        delta(1, type="text_delta", text="Done."),
        block_stop(1),
    )
    assert message["content"] == [
        {"type": "thinking", "thinking": "Let me think.", "signature": "EqQBCkYIBxgCKkBsig"},
        {"type": "text", "text": "Done."},
    ]


def test_tool_use_input_is_parsed_from_its_json_pieces() -> None:
    message = built(
        message_start(),
        block_start(0, {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}),
        delta(0, type="input_json_delta", partial_json='{"city": "Pa'),
        delta(0, type="input_json_delta", partial_json='ris", "days": [1, '),
        delta(0, type="input_json_delta", partial_json="2]}"),
        block_stop(0),
        message_delta("tool_use", output_tokens=9),
    )
    assert message["content"] == [
        {
            "type": "tool_use",
            "id": "toolu_1",
            "name": "weather",
            "input": {"city": "Paris", "days": [1, 2]},
        }
    ]
    assert message["stop_reason"] == "tool_use"


def test_tool_use_with_empty_partial_json_gets_an_empty_input() -> None:
    message = built(
        message_start(),
        block_start(0, {"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}}),
        delta(0, type="input_json_delta", partial_json=""),
        block_stop(0),
        block_start(1, {"type": "tool_use", "id": "toolu_2", "name": "later", "input": {}}),
        block_stop(1),
    )
    assert [block["input"] for block in message["content"]] == [{}, {}]


def test_two_tool_uses_keep_their_own_inputs() -> None:
    message = built(
        message_start(),
        block_start(0, {"type": "tool_use", "id": "toolu_1", "name": "a", "input": {}}),
        delta(0, type="input_json_delta", partial_json='{"n": 1}'),
        block_stop(0),
        block_start(1, {"type": "tool_use", "id": "toolu_2", "name": "b", "input": {}}),
        delta(1, type="input_json_delta", partial_json='{"n": 2}'),
        block_stop(1),
    )
    assert [block["input"] for block in message["content"]] == [{"n": 1}, {"n": 2}]


def test_redacted_thinking_is_kept_as_started() -> None:
    message = built(
        message_start(),
        block_start(0, {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"}),
        block_stop(0),
    )
    assert message["content"] == [{"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"}]


def test_citations_deltas_are_collected_on_their_text_block() -> None:
    first = {
        "type": "char_location",
        "cited_text": "The sky is blue.",
        "document_index": 0,
        "document_title": "Facts",
        "start_char_index": 0,
        "end_char_index": 16,
    }
    second = {**first, "cited_text": "Grass is green.", "start_char_index": 17}
    message = built(
        message_start(),
        block_start(0, {"type": "text", "text": ""}),
        delta(0, type="citations_delta", citation=first),
        delta(0, type="text_delta", text="The sky is blue"),
        delta(0, type="citations_delta", citation=second),
        block_stop(0),
    )
    assert message["content"] == [
        {"type": "text", "text": "The sky is blue", "citations": [first, second]}
    ]


def test_message_delta_sets_the_stop_fields_and_merges_usage() -> None:
    message = built(
        message_start(input_tokens=12, output_tokens=1, cache_read_input_tokens=4),
        block_start(0, {"type": "text", "text": ""}),
        delta(0, type="text_delta", text="one two"),
        block_stop(0),
        message_delta("stop_sequence", "three", output_tokens=2),
        MESSAGE_STOP,
    )
    assert message["stop_reason"] == "stop_sequence"
    assert message["stop_sequence"] == "three"
    assert message["usage"] == {
        "input_tokens": 12,
        "output_tokens": 2,
        "cache_read_input_tokens": 4,
    }


def test_the_events_given_are_left_unchanged() -> None:
    events = [
        message_start(),
        block_start(0, {"type": "text", "text": ""}),
        delta(0, type="text_delta", text="Hi"),
        block_stop(0),
        block_start(1, {"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}),
        delta(1, type="input_json_delta", partial_json='{"a": 1}'),
        block_stop(1),
        message_delta("tool_use", output_tokens=3),
    ]
    before = copy.deepcopy(events)
    built(*events)
    assert events == before
