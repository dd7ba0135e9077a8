"""A stream's end leaves next to no cyclic garbage in the front end (api/relay/streaming.py).

At 1,000 streams ending within a second, each stream's garbage is collected by the young
collections of that second: ~100 objects a stream made collections of up to 128 ms, a stall
every open stream waits out (docs/benchmarks.md, "The 1,000-stream tail"). That garbage was
the cancelled helper tasks of sse-starlette's response (ping, disconnect and exit-signal
listeners): each cancellation a CancelledError with its traceback and frames.

The front end runs in this process, on uvloop in a thread of its own as `ccfleet api` runs it,
so that `gc` sees its garbage; the worker is a process of its
own, and the client a blocking socket, which makes no garbage. The worker runs
tests/fakes/fake_cli.py: the garbage is the front end's, whatever the CLI.
"""

from __future__ import annotations

import collections
import gc
import socket
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import orjson
import pytest
import uvloop

from api.app import front_end_server
from ccfleet.embedded_redis import free_port
from shared.settings import Settings
from tests.conftest import StackFactory
from tests.fakes import fake_cli
from tests.processes import http_ok, wait_until

BOUND_S = 60.0
STREAMS = 10
GARBAGE_PER_STREAM = 5
"""Objects a stream's end may leave to the collector; sse-starlette's task group left ~100."""


@pytest.fixture
def front_end_port(make_stack: StackFactory, tmp_path: Path) -> Iterator[int]:
    """A front end serving in this process, in front of one worker."""
    claude = fake_cli.install(tmp_path / "claude", FAKE_CLI_MODE="answer")
    stack = make_stack(workers=1, apis=0, wait_ready=False, CCFLEET_CLAUDE_BIN=str(claude))
    settings = Settings(redis_url=stack.redis.url, auth="off", drain_timeout_s=1)
    port = free_port()
    server, _ = front_end_server(settings, host="127.0.0.1", port=port)
    serving = threading.Thread(target=uvloop.run, args=(server.serve(),), daemon=True)
    serving.start()
    try:
        wait_until(partial(http_ok, f"http://127.0.0.1:{port}/ready"), BOUND_S, "ready")
        yield port
    finally:
        server.should_exit = True
        serving.join(BOUND_S)


def streamed(port: int) -> bytes:
    """One streamed Messages reply read to its end, as a raw HTTP/1.1 client reads it."""
    body = orjson.dumps(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 64,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
    )
    with socket.create_connection(("127.0.0.1", port), timeout=BOUND_S) as sock:
        sock.sendall(
            b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        reply = b""
        while received := sock.recv(65536):
            reply += received
        return reply


def kinds(garbage: list[object]) -> str:
    counts = collections.Counter(type(each).__name__ for each in garbage)
    return ", ".join(f"{name} {count}" for name, count in counts.most_common(8))


def test_a_stream_that_ends_leaves_next_to_no_cyclic_garbage_in_the_front_end(
    front_end_port: int,
) -> None:
    assert b"message_stop" in streamed(front_end_port)  # the first: caches filled, imports done
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # every collection's garbage kept in gc.garbage
    try:
        replies = [streamed(front_end_port) for _ in range(STREAMS)]
        gc.collect()
        garbage = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert all(b"message_stop" in reply for reply in replies)
    assert len(garbage) <= GARBAGE_PER_STREAM * STREAMS, kinds(garbage)
