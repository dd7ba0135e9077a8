from __future__ import annotations

from typing import Any

from worker.stop_sequences import StopSequenceCutter


def _stream(texts: list[str]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 5, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}
        for t in texts
    ]
    events += [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 9},
        },
        {"type": "message_stop"},
    ]
    return events


def _run(cutter: StopSequenceCutter, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for event in events:
        out += cutter.feed(event)
    return out


def _text(events: list[dict[str, Any]]) -> str:
    return "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")


def test_a_stop_sequence_split_across_deltas_ends_the_text_before_it() -> None:
    cutter = StopSequenceCutter(["END"])
    out = _run(cutter, _stream(["hello E", "N", "D and more"]))
    assert _text(out) == "hello "
    assert cutter.matched == "END"
    assert [e["type"] for e in out[-3:]] == ["content_block_stop", "message_delta", "message_stop"]
    assert out[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}
    assert out[-2]["usage"]["output_tokens"] >= 1


def test_a_false_start_is_released_when_the_text_moves_on() -> None:
    cutter = StopSequenceCutter(["END"])
    out = _run(cutter, _stream(["wE", "Nt home"]))
    assert _text(out) == "wENt home"
    assert cutter.matched is None
    assert out[-2]["delta"]["stop_reason"] == "end_turn"


def test_held_text_is_flushed_when_the_block_ends() -> None:
    cutter = StopSequenceCutter(["END"])
    out = _run(cutter, _stream(["the E"]))
    assert _text(out) == "the E"


def test_the_earliest_of_several_stop_sequences_wins() -> None:
    cutter = StopSequenceCutter(["zzz", "b"])
    out = _run(cutter, _stream(["a b zzz"]))
    assert _text(out) == "a "
    assert cutter.matched == "b"


def test_without_stop_sequences_events_pass_unchanged() -> None:
    events = _stream(["x", "y"])
    assert _run(StopSequenceCutter(None), events) == events
