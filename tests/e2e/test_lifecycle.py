"""Client disconnects end the CLI; health and readiness tell the truth."""

from __future__ import annotations

import gc
import time

import pytest

from tests import loopback
from tests.conftest import Stack, StackFactory
from tests.e2e.conftest import MODEL
from tests.fakes.upstream import HangReply
from tests.processes import held_post, http_ok, wait_until

HELLO = [{"role": "user", "content": "Say hello."}]


def _cli_gone_and_upstream_closed(stack: Stack) -> bool:
    return not stack.clis() and stack.upstream.disconnects >= 1


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "non-streaming"])
def test_a_client_disconnect_kills_the_cli_within_a_second(stack: Stack, stream: bool) -> None:
    stack.upstream.enqueue(HangReply(60))
    body = {"model": MODEL, "max_tokens": 50, "messages": HELLO, "stream": stream}
    if stream:
        with loopback.stream("POST", f"{stack.url}/v1/messages", json=body, timeout=30) as response:
            # Held until the block ends: httpx closes the connection when the line iterator is
            # finalized, which after a `break` is at the next garbage collection (so the test
            # collects now: a client that left too soon fails it every time, not now and then).
            lines = response.iter_lines()
            for line in lines:
                if line == "event: message_start":
                    break
            gc.collect()
            assert stack.clis(), "the CLI runs while its client is there"
    else:  # no byte comes before the answer: leave once the CLI has reached the upstream
        with held_post(stack.url, "/v1/messages", body):
            wait_until(lambda: stack.upstream.requests, 30, "the CLI to reach the upstream")
            assert stack.clis(), "the CLI runs while its client is there"
    assert stack.upstream.requests, "the CLI had reached the upstream"
    closed_at = time.monotonic()
    wait_until(lambda: _cli_gone_and_upstream_closed(stack), 10, "the CLI to be killed")
    print(f"CLI gone {time.monotonic() - closed_at:.3f}s after the client left")
    assert stack.upstream.requests[0].disconnected


def test_health_is_up_and_ready_needs_a_live_worker(make_stack: StackFactory) -> None:
    stack = make_stack(workers=0, wait_ready=False)
    wait_until(lambda: http_ok(f"{stack.url}/health"), 30, "/health")
    not_ready = loopback.get(f"{stack.url}/ready", timeout=5)
    assert not_ready.status_code == 503
    assert not_ready.json()["workers"] == 0
    stack.add_worker()
    stack.wait_ready()
    assert loopback.get(f"{stack.url}/ready", timeout=5).json()["workers"] == 1
    stack.workers[0].stop()
    assert loopback.get(f"{stack.url}/ready", timeout=5).status_code == 503
