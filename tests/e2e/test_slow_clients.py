"""Slow and surplus connections against a real `ccfleet api` (no worker): a client must send
its request headers within CCFLEET_HEADER_TIMEOUT_S, and connections beyond
CCFLEET_MAX_CONNECTIONS are answered 503 `overloaded_error`. Raw sockets play the clients."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import orjson

from tests import loopback
from tests.conftest import Stack, StackFactory
from tests.processes import http_ok, wait_until

HEADER_TIMEOUT_S = 1.0
# Far above the header timeout; the finding was a connection still open after 30 s.
CLOSED_WITHIN_S = 10.0
LINE_INTERVAL_S = 0.3


def front_end(make_stack: StackFactory, **env: str) -> Stack:
    stack = make_stack(workers=0, wait_ready=False, **env)
    wait_until(lambda: http_ok(f"{stack.url}/health"), 30, "the front end")
    return stack


@contextlib.contextmanager
def raw_connection(stack: Stack) -> Iterator[socket.socket]:
    address = urlsplit(stack.url)
    assert address.hostname is not None and address.port is not None
    with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
        yield sock


def closed_by_server(sock: socket.socket, wait_s: float) -> bool:
    """Whether the server closes `sock` within `wait_s` (reading, the answer discarded)."""
    sock.settimeout(wait_s)
    try:
        return sock.recv(65536) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def seconds_until_closed_while_dribbling(sock: socket.socket, limit_s: float) -> float | None:
    """Send one header line every LINE_INTERVAL_S, as a slow-loris client does; the seconds
    until the server closed the connection, or None if it was still open after `limit_s`."""
    started = time.monotonic()
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    line = 0
    while time.monotonic() - started < limit_s:
        if closed_by_server(sock, LINE_INTERVAL_S):
            return time.monotonic() - started
        try:
            sock.sendall(b"X-Slow-%d: 1\r\n" % line)
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - started
        line += 1
    return None


def test_a_client_sending_one_header_line_at_a_time_is_cut_off_at_the_header_timeout(
    make_stack: StackFactory,
) -> None:
    stack = front_end(make_stack, CCFLEET_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S))
    with raw_connection(stack) as sock:
        closed_after_s = seconds_until_closed_while_dribbling(sock, limit_s=30)
    assert closed_after_s is not None, "still open after 30 s"
    assert closed_after_s < CLOSED_WITHIN_S
    assert http_ok(f"{stack.url}/health"), "the front end serves on"


def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout(
    make_stack: StackFactory,
) -> None:
    stack = front_end(make_stack, CCFLEET_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S))
    with raw_connection(stack) as sock:
        assert closed_by_server(sock, CLOSED_WITHIN_S)


def test_the_header_timeout_times_the_headers_and_not_a_slow_body(
    make_stack: StackFactory,
) -> None:
    stack = front_end(make_stack, CCFLEET_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S))
    body = orjson.dumps(
        {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hi"}]}
    )
    head = (
        b"POST /v1/messages/count_tokens HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    with raw_connection(stack) as sock:
        sock.sendall(head)
        half = len(body) // 2
        sock.sendall(body[:half])
        time.sleep(2 * HEADER_TIMEOUT_S)  # the body is slow, on purpose: that is the case
        sock.sendall(body[half:])
        sock.settimeout(10)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


def over_the_cap(url: str) -> bool:
    return loopback.get(f"{url}/health", timeout=5).status_code == 503


def test_connections_beyond_the_cap_are_answered_503_overloaded_in_each_apis_shape(
    make_stack: StackFactory,
) -> None:
    stack = front_end(make_stack, CCFLEET_MAX_CONNECTIONS="2", CCFLEET_HEADER_TIMEOUT_S="60")
    with raw_connection(stack) as first, raw_connection(stack) as second:
        for held in (first, second):
            held.sendall(b"GET /health HTTP/1.1\r\n")  # and no more: the connection stays
        wait_until(lambda: over_the_cap(stack.url), 10, "the third connection refused")
        refused = loopback.get(f"{stack.url}/health", timeout=5)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["type"] == "overloaded_error"
        chat = loopback.post(
            f"{stack.url}/v1/chat/completions",
            json={"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hi"}]},
            timeout=5,
        )
        assert chat.status_code == 503
        assert chat.json()["error"]["code"] == "overloaded"
    wait_until(lambda: http_ok(f"{stack.url}/health"), 10, "served again once they closed")
