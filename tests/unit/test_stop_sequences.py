from __future__ import annotations

import random
from typing import Any

from shared.wire.messages import STOP_SEQUENCE_MAX_CHARS, STOP_SEQUENCES_MAX
from shared.wire.token_estimate import text_tokens
from worker.reply.stop_sequences import StopSequenceCutter


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


def test_a_cut_answer_reports_ccfleets_one_estimate_of_the_text_it_sent() -> None:
    cutter = StopSequenceCutter(["END"])
    out = _run(cutter, _stream(["y" * 70, "END"]))
    assert _text(out) == "y" * 70
    assert out[-2]["usage"]["output_tokens"] == text_tokens("y" * 70) == 20


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


def _reference(text: str, stops: list[str]) -> tuple[str, str | None]:
    """The text before the first stop sequence to end (the longest of those ending together)."""
    for end in range(1, len(text) + 1):
        ending = [stop for stop in stops if text[:end].endswith(stop)]
        if ending:
            stop = max(ending, key=len)
            return text[: end - len(stop)], stop
    return text, None


def test_the_cut_matches_a_plain_search_for_random_texts_stops_and_delta_splits() -> None:
    rng = random.Random(7)
    for _ in range(400):
        stops = ["".join(rng.choices("ab", k=rng.randint(1, 4))) for _ in range(rng.randint(1, 4))]
        text = "".join(rng.choices("abc", k=rng.randint(0, 30)))
        cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text) + 1, rng.randint(0, 5))))
        pieces = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        cutter = StopSequenceCutter(stops)
        out = _run(cutter, _stream([p for p in pieces if p]))
        assert (_text(out), cutter.matched) == _reference(text, stops), (stops, pieces)


def test_only_a_tail_that_may_still_become_a_stop_sequence_is_held_back() -> None:
    cutter = StopSequenceCutter(["abc", "xyz"])
    out = _run(cutter, _stream(["hello ab"])[:3])
    assert _text(out) == "hello "
    out = cutter.feed(_stream(["d"])[2])
    assert _text(out) == "abd"


def test_a_stop_sequence_inside_a_longer_one_ends_the_text_where_it_ends() -> None:
    cutter = StopSequenceCutter(["abcd", "bc"])
    out = _run(cutter, _stream(["abcd"]))
    assert (_text(out), cutter.matched) == ("a", "bc")


def test_the_largest_allowed_set_of_stop_sequences_is_matched_in_one_pass() -> None:
    stops = [
        f"{i:02d}" + "q" * (STOP_SEQUENCE_MAX_CHARS - 3) + "!" for i in range(STOP_SEQUENCES_MAX)
    ]
    words = ["lorem ipsum dolor sit amet " + "q" * 300] * 2000  # near misses everywhere
    cutter = StopSequenceCutter(stops)
    out = _run(cutter, _stream([*words, stops[-1], "after"]))
    assert cutter.matched == stops[-1]
    assert _text(out) == "".join(words)
