"""Time to first token: from the request's arrival to the first content delta relayed."""

from __future__ import annotations

import time

from api.telemetry.request_recorder import RequestTiming
from shared.telemetry.first_token import FirstTokenClock

ENVELOPE = ("message_start", "content_block_start", "ping")


def arrived_seconds_ago(seconds: float) -> FirstTokenClock:
    return FirstTokenClock(received_at_s=time.monotonic() - seconds)


def test_the_clock_runs_from_the_requests_arrival_to_the_first_content_delta() -> None:
    clock = arrived_seconds_ago(2.0)

    assert [clock.relayed(event) for event in ENVELOPE] == [None, None, None]
    ttft_s = clock.relayed("content_block_delta")

    assert ttft_s is not None and 2.0 <= ttft_s < 60.0
    assert clock.ttft_s == ttft_s


def test_only_the_first_content_delta_stops_the_clock() -> None:
    clock = arrived_seconds_ago(1.0)
    first = clock.relayed("content_block_delta")

    assert clock.relayed("content_block_delta") is None
    assert clock.ttft_s == first


def test_an_answer_without_a_content_delta_has_no_time_to_first_token() -> None:
    clock = arrived_seconds_ago(1.0)
    for event in (*ENVELOPE, "error", "message_stop"):
        clock.relayed(event)

    assert clock.ttft_s is None
    assert RequestTiming(first_token=clock).outcome(200).ttft_ms is None


def test_a_resumed_stream_has_no_time_to_first_token() -> None:
    clock = FirstTokenClock(resumed=True)

    assert clock.relayed("content_block_delta") is None
    assert clock.ttft_s is None


def test_the_dashboard_records_the_clocks_time_to_first_token_in_milliseconds() -> None:
    timing = RequestTiming(first_token=arrived_seconds_ago(0.5))
    ttft_s = timing.first_token.relayed("content_block_delta")

    assert ttft_s is not None
    assert timing.outcome(200).ttft_ms == ttft_s * 1000
