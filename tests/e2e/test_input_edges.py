"""Input at the edges, on every route, against a front end with a real Redis and no worker:
JSON that cannot travel, truncated images, dates far in the past, wrong methods and ids with
a trailing newline are each a 4xx, never a 500 and never a long stall."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from tests import loopback
from tests.conftest import Stack, module_stack
from tests.fakes.upstream import FakeUpstream

# In one xdist process: the module's tests share its front end, started once.
pytestmark = pytest.mark.xdist_group("input_edges")

MODEL = "claude-sonnet-4-5"
RETENTION_DAYS = 30


@pytest.fixture(scope="module")
def front_end(
    tmp_path_factory: pytest.TempPathFactory, session_upstream: FakeUpstream, claude_bin: str
) -> Iterator[Stack]:
    """One front end, no worker, a ledger kept `RETENTION_DAYS` days: shared by the module's
    tests, each a request refused or a read, none leaving state behind."""
    with module_stack(
        tmp_path_factory,
        session_upstream,
        claude_bin,
        env={"CCFLEET_USAGE_RETENTION_DAYS": str(RETENTION_DAYS)},
    ) as stack:
        yield stack


def post_raw(stack: Stack, path: str, raw: bytes) -> httpx.Response:
    return loopback.post(
        f"{stack.url}{path}", content=raw, headers={"content-type": "application/json"}, timeout=30
    )


def deep(depth: int) -> bytes:
    """A JSON array nested `depth` levels: more than orjson itself would write."""
    return b"[" * depth + b"1" + b"]" * depth


def with_raw(body: dict[str, Any], placeholder: str, raw: bytes) -> bytes:
    """`body` as JSON, with the string `placeholder` replaced by `raw` JSON text."""
    return orjson.dumps(body).replace(orjson.dumps(placeholder), raw)


def counted(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]} | fields


def with_tool_use_input(value: object) -> dict[str, Any]:
    tool_use = {"type": "tool_use", "id": "t1", "name": "x", "input": {"a": value}}
    return counted(
        messages=[
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": [tool_use]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
        ]
    )


HUGE = str(2**64).encode()
COUNT_TOKENS_BAD_JSON: list[tuple[str, bytes, str]] = [
    (
        "an integer past 64 bits in a tool's input_schema",
        with_raw(counted(tools=[{"name": "x", "input_schema": {"n": "@"}}]), "@", HUGE),
        "tools.0.input_schema.n",
    ),
    (
        "an integer past 64 bits in a tool_use input",
        with_raw(with_tool_use_input("@"), "@", HUGE),
        "messages.1.content.0.input.a",
    ),
    (
        "a lone surrogate in a tool_use input",
        with_raw(with_tool_use_input("@"), "@", b'"\\ud800"'),
        "messages.1.content.0.input",
    ),
    (
        "a tool_use input nested 300 levels",
        with_raw(with_tool_use_input("@"), "@", deep(300)),
        "messages.1.content.0.input.a",
    ),
]


@pytest.mark.parametrize(
    ("case", "raw", "field"), COUNT_TOKENS_BAD_JSON, ids=[c[0] for c in COUNT_TOKENS_BAD_JSON]
)
def test_count_tokens_refuses_json_that_cannot_travel_with_a_400_naming_the_field(
    front_end: Stack, case: str, raw: bytes, field: str
) -> None:
    response = post_raw(front_end, "/v1/messages/count_tokens", raw)
    assert response.status_code == 400, (case, response.text)
    assert response.json()["error"]["message"].startswith(field), response.text


def test_count_tokens_counts_a_truncated_png_as_an_unreadable_image(front_end: Stack) -> None:
    truncated = base64.b64encode(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00").decode()
    source = {"type": "base64", "media_type": "image/png", "data": truncated}
    image = {"type": "image", "source": source}
    body = counted(messages=[{"role": "user", "content": [image]}])
    response = post_raw(front_end, "/v1/messages/count_tokens", orjson.dumps(body))
    assert response.status_code == 200, response.text
    assert response.json()["input_tokens"] >= 1600  # an unreadable header counts the most


def batch_of(custom_id: str, params: bytes) -> bytes:
    item = {"custom_id": custom_id, "params": "@"}
    return with_raw({"requests": [item]}, "@", params)


def test_a_batch_whose_params_nest_past_what_json_can_store_is_a_400_naming_them(
    front_end: Stack,
) -> None:
    params = with_raw(counted(max_tokens=10, metadata="@"), "@", deep(300))
    response = post_raw(front_end, "/v1/messages/batches", batch_of("deep", params))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"].startswith("requests.0.params"), response.text


def test_a_custom_id_with_a_trailing_newline_refuses_the_batch(front_end: Stack) -> None:
    params = orjson.dumps(counted(max_tokens=10))
    response = post_raw(front_end, "/v1/messages/batches", batch_of("a\n", params))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"].startswith("requests.0.custom_id"), response.text


def test_usage_since_year_one_is_read_from_the_first_day_the_ledger_keeps(
    front_end: Stack,
) -> None:
    response = loopback.get(f"{front_end.url}/v1/usage", params={"since": "0001-01-01"}, timeout=60)
    assert response.status_code == 200, response.text
    first_kept = datetime.now(UTC).date() - timedelta(days=RETENTION_DAYS)
    assert response.json()["since"] in {
        first_kept.isoformat(),
        (first_kept + timedelta(days=1)).isoformat(),  # the day turned during the request
    }


@pytest.mark.parametrize("since", ["0", "1700000000", "2026-13-01", "yesterday"])
def test_usage_since_that_is_not_a_calendar_date_is_a_400(front_end: Stack, since: str) -> None:
    response = loopback.get(f"{front_end.url}/v1/usage", params={"since": since}, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"].startswith("since"), response.text


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/messages", "POST"),
        ("PUT", "/v1/messages/count_tokens", "POST"),
        ("DELETE", "/v1/models", "GET"),
        # Not JSON, but no route takes the POST: 405, not the 415 of a body the route refuses.
        ("POST", "/v1/models", "GET"),
        ("POST", "/health", "GET"),
    ],
)
def test_a_wrong_method_is_a_405_that_names_the_allowed_ones(
    front_end: Stack, method: str, path: str, allowed: str
) -> None:
    response = loopback.request(method, f"{front_end.url}{path}", timeout=30)
    assert response.status_code == 405, response.text
    assert allowed in response.headers.get("allow", ""), response.headers
    assert response.json()["type"] == "error"
