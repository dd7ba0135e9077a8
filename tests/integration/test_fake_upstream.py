"""The fake upstream (tests/fakes/upstream.py) as a test server must be: stopped, it leaves
no connection open behind it (pytest turns the warning of one found later into a failure of
whichever test is running then)."""

from __future__ import annotations

import gc
import json
import socket

from tests.fakes.upstream import FakeUpstream, TextReply
from tests.waiting import wait_until

BOUND_S = 30.0


def test_stopping_the_fake_upstream_closes_a_connection_whose_client_reads_nothing() -> None:
    message = {"role": "user", "content": "hi"}
    body = json.dumps({"model": "m", "max_tokens": 5, "stream": True, "messages": [message]})
    request = (
        "POST /v1/messages HTTP/1.1\r\nhost: upstream\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n{body}"
    )
    with FakeUpstream() as upstream:
        # More than the socket buffers hold: the reply waits on a client that never reads.
        upstream.enqueue(TextReply("x" * 20_000_000, chunk_chars=100_000))
        client = socket.create_connection(("127.0.0.1", upstream.port), timeout=BOUND_S)
        with client:
            client.sendall(request.encode())
            wait_until(lambda: upstream.requests, BOUND_S, "the upstream to take the request")
            upstream.stop()
            gc.collect()  # a transport left open warns here, when collected
            while client.recv(1 << 20):
                pass  # the reply so far, then the end: the server closed the connection
