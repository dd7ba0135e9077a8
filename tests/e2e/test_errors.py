"""Every error path: plain HTTP before the first byte, `event: error` after it."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import orjson
import pytest
from anthropic.types import MessageParam

from tests import loopback
from tests.conftest import Stack, module_stack
from tests.e2e.conftest import MODEL
from tests.fakes.upstream import ErrorReply, FakeUpstream, MidStreamErrorReply, RecordedRequest

HELLO: list[MessageParam] = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def refusing_stack(
    tmp_path_factory: pytest.TempPathFactory, session_upstream: FakeUpstream, claude_bin: str
) -> Iterator[Stack]:
    """A front end and a worker that the module's refused requests share: a request refused at
    the door leaves nothing behind for the next test."""
    with module_stack(tmp_path_factory, session_upstream, claude_bin, workers=1) as stack:
        yield stack


@pytest.fixture
def refusing(refusing_stack: Stack, upstream: FakeUpstream) -> Stack:
    """`refusing_stack`, its upstream with no request recorded yet (`upstream` resets it): a
    request the front end wrongly let through would reach the worker and be recorded."""
    return refusing_stack


@pytest.mark.parametrize(
    ("status", "error_type", "sdk_error"),
    [
        (429, "rate_limit_error", anthropic.RateLimitError),
        (529, "overloaded_error", anthropic.InternalServerError),
        (401, "authentication_error", anthropic.AuthenticationError),
        (500, "api_error", anthropic.InternalServerError),
        (400, "invalid_request_error", anthropic.BadRequestError),
    ],
)
def test_an_upstream_error_becomes_the_same_http_error(
    stack: Stack,
    client: anthropic.Anthropic,
    status: int,
    error_type: str,
    sdk_error: type[anthropic.APIStatusError],
) -> None:
    reply = ErrorReply(status, error_type, "upstream says no")

    def always(_request: RecordedRequest) -> ErrorReply:
        return reply  # the CLI retries a 400 with fewer betas: make it stick

    stack.upstream.set_responder(always)
    with pytest.raises(sdk_error) as caught:
        client.messages.create(model=MODEL, max_tokens=50, messages=HELLO)
    error = caught.value
    assert error.status_code == status
    body = error.body
    assert isinstance(body, dict)
    assert body["type"] == "error" and body["error"]["type"] == error_type
    assert body["request_id"] == error.response.headers["request-id"]
    if status in (400, 429):
        assert body["error"]["message"] == "upstream says no"
    assert "127.0.0.1" not in body["error"]["message"]


def test_a_streaming_request_that_fails_before_any_event_gets_a_plain_http_error(
    stack: Stack, client: anthropic.Anthropic
) -> None:
    stack.upstream.set_responder(lambda _request: ErrorReply(529, "overloaded_error", "Overloaded"))
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.stream(model=MODEL, max_tokens=50, messages=HELLO) as stream,
    ):
        stream.until_done()
    assert caught.value.status_code == 529


def test_a_mid_stream_upstream_error_is_an_error_event_not_a_complete_answer(
    stack: Stack,
) -> None:
    stack.upstream.enqueue(MidStreamErrorReply("Partial answer that ", "overloaded_error"))
    body = {"model": MODEL, "max_tokens": 50, "messages": HELLO, "stream": True}
    with loopback.stream("POST", f"{stack.url}/v1/messages", json=body, timeout=60) as response:
        assert response.status_code == 200
        frames = [
            (line.removeprefix("event: "), None)
            for line in response.iter_lines()
            if line.startswith("event: ")
        ]
    names = [name for name, _ in frames]
    assert names[0] == "message_start"
    assert "content_block_delta" in names
    assert names[-1] == "error"
    assert "message_stop" not in names and "message_delta" not in names


def test_a_mid_stream_error_fails_a_non_streaming_request(
    stack: Stack, client: anthropic.Anthropic
) -> None:
    stack.upstream.enqueue(MidStreamErrorReply("Partial answer that ", "overloaded_error"))
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model=MODEL, max_tokens=50, messages=HELLO)
    assert caught.value.status_code >= 500


def test_the_sdk_raises_on_the_error_event(stack: Stack, client: anthropic.Anthropic) -> None:
    stack.upstream.enqueue(MidStreamErrorReply("Partial answer that ", "overloaded_error"))
    with (
        pytest.raises(anthropic.APIStatusError),
        client.messages.stream(model=MODEL, max_tokens=50, messages=HELLO) as stream,
    ):
        for _event in stream:
            pass


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"model": MODEL, "max_tokens": 10}, "messages"),
        ({"model": MODEL, "messages": HELLO}, "max_tokens"),
        ({"model": MODEL, "max_tokens": "ten", "messages": HELLO}, "max_tokens"),
        (
            {"model": MODEL, "max_tokens": 10, "messages": [{"role": "robot", "content": "x"}]},
            "messages.0.role",
        ),
        (
            {
                "model": MODEL,
                "max_tokens": 10,
                "messages": [{"role": "user", "content": [{"type": "video"}]}],
            },
            "messages.0.content",
        ),
        ({"model": MODEL, "max_tokens": 10, "messages": HELLO, "temperature": 3}, "temperature"),
        ({"model": MODEL, "max_tokens": 10, "messages": HELLO, "bogus": 1}, "bogus"),
        (
            {
                "model": MODEL,
                "max_tokens": 10,
                "messages": [*HELLO, {"role": "assistant", "content": "Hi"}],
            },
            "messages",
        ),
    ],
)
def test_invalid_input_is_a_400_naming_the_field_and_queues_nothing(
    refusing: Stack, payload: dict[str, object], field: str
) -> None:
    response = loopback.post(f"{refusing.url}/v1/messages", json=payload, timeout=10)
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith(field)
    assert response.headers["request-id"] == body["request_id"]
    assert refusing.upstream.requests == []


def test_malformed_json_is_a_400(refusing: Stack) -> None:
    response = loopback.post(
        f"{refusing.url}/v1/messages",
        content=b'{"model": "x", "messages": [',
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "message": "The request body is not valid JSON.",
    }


def test_an_oversized_body_is_a_413(refusing: Stack) -> None:
    big = orjson.dumps(
        {
            "model": MODEL,
            "max_tokens": 1,
            "messages": [{"role": "user", "content": "x" * (33 << 20)}],
        }
    )
    response = loopback.post(
        f"{refusing.url}/v1/messages",
        content=big,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"


def test_an_unknown_path_is_a_404_in_the_api_error_shape(refusing: Stack) -> None:
    response = loopback.get(f"{refusing.url}/v1/nothing-here", timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
    assert response.headers["request-id"].startswith("req_")
