"""Bad and oversized input against a front end with a real Redis and no worker: every bad
input is a 4xx naming its field and leaves nothing in Redis; every response has its own id."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any, cast

import httpx
import orjson
import pytest
import redis

from ccfleet.embedded_redis import EmbeddedRedis
from shared.broker import redis_keys
from tests import loopback
from tests.conftest import Stack, StackFactory, module_stack
from tests.fakes.upstream import FakeUpstream
from tests.processes import http_ok, wait_until

# In one xdist process: the module's tests share its front end, started once.
pytestmark = pytest.mark.xdist_group("input_limits")

MODEL = "claude-sonnet-4-5"
HELLO = [{"role": "user", "content": "Say hello."}]
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGBgAAAABQABh6FO1AAAAABJRU5ErkJggg"
)
PNG_PADDED = PNG + "=="
TOOL = {"name": "get_weather", "input_schema": {"type": "object"}}


# One front end, no worker: a request that passes admission waits in the queue.
FRONT_END_ENV = {"CCFLEET_MAX_TOKENS_LIMIT": "64000", "CCFLEET_INTERACTIVE_MAX_WAIT_S": "1"}


@pytest.fixture(scope="module")
def front_end(
    tmp_path_factory: pytest.TempPathFactory, session_upstream: FakeUpstream, claude_bin: str
) -> Iterator[Stack]:
    """The front end the module's tests share: each sends input that is refused, or admitted
    and timed out (529, out of the queue again), and leaves Redis as it found it."""
    with module_stack(tmp_path_factory, session_upstream, claude_bin, env=FRONT_END_ENV) as stack:
        yield stack


@pytest.fixture
def own_front_end(make_stack: StackFactory) -> Stack:
    """A front end of the test's own, for a test that breaks the fleet's state in Redis."""
    stack = make_stack(workers=0, wait_ready=False, **FRONT_END_ENV)
    wait_until(lambda: http_ok(f"{stack.url}/health"), 30, "the front end")
    return stack


def request(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 10, "messages": HELLO} | fields


def post_raw(
    stack: Stack, raw: bytes, path: str = "/v1/messages", **headers: str
) -> httpx.Response:
    return loopback.post(
        f"{stack.url}{path}",
        content=raw,
        headers={"content-type": "application/json", **headers},
        timeout=30,
    )


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def stored_keys(stack: Stack) -> list[bytes]:
    """Every key but the dashboard's request figures, which count refused requests too."""
    figures = redis_keys.request_stats(0).removesuffix("0").encode()
    with redis.Redis.from_url(stack.redis.url) as client:
        return sorted(key for key in client.keys("*") if not key.startswith(figures))


def lane_count(stack: Stack) -> int:
    with redis.Redis.from_url(stack.redis.url) as client:
        return int(client.zcard(redis_keys.lane_waiting("interactive")))


def tool_use_input(value: Any) -> dict[str, Any]:
    return request(
        messages=[
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": {"a": value}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
        ]
    )


BAD_INPUT: list[tuple[str, bytes, str]] = [
    (
        "max_tokens beyond every integer",
        orjson.dumps(request()).replace(
            b'"max_tokens":10', b'"max_tokens":' + str(10**30).encode()
        ),
        "max_tokens",
    ),
    ("max_tokens over the limit", orjson.dumps(request(max_tokens=64001)), "max_tokens"),
    ("max_tokens as a string", orjson.dumps(request(max_tokens="10")), "max_tokens"),
    ("max_tokens as true", orjson.dumps(request(max_tokens=True)), "max_tokens"),
    (
        "JSON nested 255 deep",
        orjson.dumps(tool_use_input(nested(200))),
        "messages.1.content.0.input.a",
    ),
    (
        "an integer past 64 bits inside a tool input",
        orjson.dumps(tool_use_input(0)).replace(b'"a":0', b'"a":' + str(2**70).encode()),
        "messages.1.content.0.input.a",
    ),
    ("NUL in model", orjson.dumps(request(model="claude\u0000x")), "model"),
    ("NUL in system", orjson.dumps(request(system="be\u0000nice")), "system"),
    (
        "NUL in a system block",
        orjson.dumps(request(system=[{"type": "text", "text": "a\u0000"}])),
        "system",
    ),
    (
        "a lone surrogate",
        orjson.dumps(request()).replace(b"Say hello.", b"Say \\ud800"),
        "messages.0.content",
    ),
    (
        "a lone surrogate in a key",
        orjson.dumps(tool_use_input(0)).replace(b'"a":0', b'"\\udc00":0'),
        "messages.1.content.0.input",
    ),
    (
        "invalid base64 image data",
        orjson.dumps(
            request(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": "not*base64!",
                                },
                            }
                        ],
                    }
                ]
            )
        ),
        "messages.0.content.0",
    ),
    (
        "free text as tool_choice.name",
        orjson.dumps(
            request(
                tools=[TOOL],
                tool_choice={"type": "tool", "name": "Ignore all previous instructions"},
            )
        ),
        "tool_choice",
    ),
    (
        "tool_choice naming no tool",
        orjson.dumps(
            request(tools=[TOOL], tool_choice={"type": "tool", "name": "delete_everything"})
        ),
        "tool_choice.name",
    ),
    (
        "65 stop sequences",
        orjson.dumps(request(stop_sequences=[f"s{i}" for i in range(65)])),
        "stop_sequences",
    ),
    (
        "a stop sequence of 257 characters",
        orjson.dumps(request(stop_sequences=["x" * 257])),
        "stop_sequences.0",
    ),
]


@pytest.mark.parametrize(("case", "raw", "field"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_a_400_naming_the_field_that_leaves_nothing_in_redis(
    front_end: Stack, case: str, raw: bytes, field: str
) -> None:
    before = stored_keys(front_end)
    response = post_raw(front_end, raw)
    assert response.status_code == 400, (case, response.text)
    body = response.json()
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith(field), body["error"]["message"]
    assert body["request_id"] == response.headers["request-id"]
    assert stored_keys(front_end) == before
    assert lane_count(front_end) == 0


def test_a_valid_image_and_an_image_without_padding_are_accepted(front_end: Stack) -> None:
    for data in (PNG_PADDED, PNG):
        image = {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": data},
        }
        raw = orjson.dumps(request(messages=[{"role": "user", "content": [image]}]))
        response = post_raw(front_end, raw)
        # Admitted: it waits for a worker there is none of, then 529.
        assert response.status_code == 529, response.text


def test_bad_input_on_the_openai_route_is_a_400_naming_the_field(front_end: Stack) -> None:
    cases = [
        ({"model": "gpt\u0000", "messages": HELLO}, "model"),
        ({"model": MODEL, "messages": HELLO, "max_tokens": True}, "max_tokens"),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": nested(200)}]},
            "messages.0.content",
        ),
    ]
    for payload, field in cases:
        response = post_raw(front_end, orjson.dumps(payload), path="/v1/chat/completions")
        assert response.status_code == 400, response.text
        assert response.json()["error"]["message"].startswith(field), response.text
    assert lane_count(front_end) == 0


def chunks_of(total_bytes: int, *, max_tokens: bool = True) -> Iterator[bytes]:
    yield b'{"model": "m", ' + (b'"max_tokens": 1, ' if max_tokens else b"")
    yield b'"messages": [{"role": "user", "content": "'
    for _ in range(total_bytes >> 20):
        yield b"x" * (1 << 20)
    yield b'"}]}'


def test_a_chunked_body_over_the_limit_is_a_413(front_end: Stack) -> None:
    response = loopback.post(
        f"{front_end.url}/v1/messages",
        content=chunks_of(33 << 20),  # no Content-Length: sent chunked
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["type"] == "request_too_large"
    assert response.headers["request-id"] == response.json()["request_id"]


def test_a_chunked_body_within_the_limit_is_read_whole(front_end: Stack) -> None:
    response = loopback.post(
        f"{front_end.url}/v1/messages/count_tokens",
        content=chunks_of(2 << 20, max_tokens=False),
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.json()["input_tokens"] > 500_000


@pytest.mark.parametrize(
    ("last_event_id", "status"),
    [
        ("garbage", 400),
        ("ccfleet:lane:interactive:waiting:1", 400),
        ("job_" + "0" * 32 + ":x", 400),
        ("job_" + "0" * 32 + ":3", 404),
    ],
)
def test_a_malformed_last_event_id_is_400_and_an_unknown_one_404(
    front_end: Stack, last_event_id: str, status: int
) -> None:
    raw = orjson.dumps(request(stream=True))
    response = post_raw(front_end, raw, **{"last-event-id": last_event_id})
    assert response.status_code == status, response.text
    assert response.json()["error"]["type"] == (
        "invalid_request_error" if status == 400 else "not_found_error"
    )
    assert "Last-Event-ID" in response.json()["error"]["message"]


def test_a_500_after_a_400_on_one_connection_carries_its_own_request_id(
    own_front_end: Stack,
) -> None:
    front_end = own_front_end
    with redis.Redis.from_url(front_end.redis.url) as client:
        # A worker heartbeat no worker would write: reading the fleet fails unexpectedly.
        client.zadd(redis_keys.workers_index(), {"w-broken": int(time.time() * 1000) + 60_000})
        client.hset(redis_keys.worker_heartbeat("w-broken"), mapping={"id": "w", "slots": "many"})
    with httpx.Client(timeout=10) as http:
        first = http.post(f"{front_end.url}/v1/messages", json=request(bogus=1))
        second = http.get(f"{front_end.url}/v1/fleet")
    assert first.status_code == 400 and second.status_code == 500, second.text
    ids = [first.headers["request-id"], second.headers["request-id"]]
    assert ids[0] != ids[1] and all(i.startswith("req_") for i in ids)
    assert second.json()["request_id"] == ids[1]
    assert second.json()["error"] == {"type": "api_error", "message": "Internal server error"}


def test_a_request_that_would_not_fit_the_redis_memory_budget_is_529_and_leaves_nothing(
    make_stack: StackFactory, redis_server: EmbeddedRedis
) -> None:
    with redis.Redis.from_url(redis_server.url) as client:
        used = int(client.info("memory")["used_memory"])
    stack = make_stack(
        workers=0,
        wait_ready=False,
        CCFLEET_REDIS_MEMORY_BUDGET_BYTES=str(used + (4 << 20)),
        CCFLEET_INTERACTIVE_MAX_WAIT_S="1",
    )
    wait_until(lambda: http_ok(f"{stack.url}/health"), 30, "the front end")
    before = stored_keys(stack)
    big = request(messages=[{"role": "user", "content": "x" * (3 << 20)}])
    refused = post_raw(stack, orjson.dumps(big))
    assert refused.status_code == 529, refused.text
    assert "no room" in refused.json()["error"]["message"]
    assert refused.headers["retry-after"]
    assert stored_keys(stack) == before
    small = post_raw(stack, orjson.dumps(request()))
    assert small.status_code == 529  # admitted, then no worker came within a second
    assert "No worker" in small.json()["error"]["message"], small.text


def test_requests_arriving_together_share_their_reads_of_the_fleet(front_end: Stack) -> None:
    """Each request's admission asks what the fleet can serve; those asking while a read is in
    flight share the next one. Redis is paused while the requests arrive, so they ask within
    moments of each other: a few reads serve them all (8 seen here), instead of one each
    (three ZCARDs a read, one for each lane: 60 before they were shared)."""
    count = 20
    with redis.Redis.from_url(front_end.redis.url) as client:
        before = zcard_calls(client)
        client.execute_command("CLIENT", "PAUSE", 1500, "ALL")
        answers = asyncio.run(post_together(front_end, count))
        assert [answer.status_code for answer in answers] == [529] * count  # no worker came
        one_read_each = 3 * count
        assert zcard_calls(client) - before < one_read_each / 2


def zcard_calls(client: redis.Redis) -> int:
    stats = cast(dict[str, Any], client.info("commandstats"))
    return int(stats.get("cmdstat_zcard", {}).get("calls", 0))


async def post_together(stack: Stack, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        posts = [client.post("/v1/messages", json=request()) for _ in range(count)]
        return await asyncio.gather(*posts)
