"""A stream belongs to the request that started it: resuming needs the same body, a resumer
leaving never cancels the job its first client still reads, and OpenAI ids are not job ids.
Real processes, the real CLI against the fake upstream."""

from __future__ import annotations

import redis

from shared.broker import redis_keys
from tests import loopback
from tests.conftest import StackFactory
from tests.integration.test_fleet_failures import (
    STREAM_TIMEOUT,
    body,
    ended,
    read_stream,
    slow_text,
    sse_events,
    text_deltas,
    text_of,
)
from tests.processes import wait_until


def test_only_the_same_request_resumes_a_stream_and_a_resumer_leaving_cancels_nothing(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(workers=1, apis=1)
    reply = slow_text(4, pieces=32)
    stack.upstream.enqueue(reply)
    url = f"{stack.url}/v1/messages"
    with loopback.stream("POST", url, json=body(stream=True), timeout=STREAM_TIMEOUT) as owner:
        assert owner.status_code == 200, owner.read()
        owner_events = sse_events(owner)
        first = read_stream(owner_events, until=text_deltas(2), timeout_s=15).events
        last_id = [e.id for e in first if e.id][-1]
        job_id = last_id.rpartition(":")[0]

        other_body = body(stream=True, max_tokens=999)
        stranger = loopback.post(
            url, json=other_body, headers={"last-event-id": last_id}, timeout=10
        )
        assert stranger.status_code == 404, stranger.text
        assert stranger.json()["error"]["type"] == "not_found_error"

        with loopback.stream(
            "POST",
            url,
            json=body(stream=True),
            headers={"last-event-id": last_id},
            timeout=STREAM_TIMEOUT,
        ) as resumer:
            assert resumer.status_code == 200, resumer.read()
            resumed = read_stream(sse_events(resumer), until=text_deltas(1), timeout_s=15)
            assert resumed.events, "the resumer got the rest of the stream"
        # The resumer has gone; the owner reads on to the end.
        rest = read_stream(owner_events, until=ended, timeout_s=30)
    assert rest.names[-1:] == ["message_stop"], (rest.names, rest.broken_by)
    assert text_of(first + rest.events) == reply.text

    with redis.Redis.from_url(stack.redis.url) as client:
        wait_until(
            lambda: client.hget(redis_keys.job_record(job_id), "status") == b"done", 10, "job done"
        )
        assert not client.hexists(redis_keys.job_record(job_id), "payload"), "request dropped"
        assert client.keys("arq:result:*") == [], "arq keeps no results"


def test_an_openai_completion_id_is_not_a_job_id(make_stack: StackFactory) -> None:
    stack = make_stack(workers=1, apis=1)
    response = loopback.post(
        f"{stack.url}/v1/chat/completions",
        json={"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hi"}]},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    completion_hex = response.json()["id"].removeprefix("chatcmpl-")
    with redis.Redis.from_url(stack.redis.url) as client:
        job_keys = client.keys("ccfleet:job:*")
    assert job_keys, "the job left its journal"
    assert not [k for k in job_keys if completion_hex.encode() in k]
