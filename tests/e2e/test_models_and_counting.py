"""GET /v1/models for both SDKs, and POST /v1/messages/count_tokens, against a real front end."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import anthropic
import openai
import pytest

from tests import loopback
from tests.conftest import Stack, StackFactory, module_stack
from tests.e2e.conftest import MODEL
from tests.fakes.upstream import FakeUpstream, model_object
from tests.processes import http_ok, wait_until
from tests.sdk import SdkClients

API_KEY = "sk-ant-api03-fleet-key"

DEFAULT_IDS = [
    "claude-opus-5-5",
    "claude-sonnet-5-5",
    "claude-haiku-5-5",
    "claude-fable-5-2",
    "opus",
    "sonnet",
    "haiku",
    "fable",
]


@pytest.fixture(scope="module")
def reading_stack(
    tmp_path_factory: pytest.TempPathFactory, session_upstream: FakeUpstream, claude_bin: str
) -> Iterator[Stack]:
    """One front end and one worker for the module's reads (model lists, token counts), which
    change nothing: started once, not once a test."""
    with module_stack(tmp_path_factory, session_upstream, claude_bin, workers=1) as stack:
        yield stack


@pytest.fixture
def stack(reading_stack: Stack) -> Stack:
    """This module's `stack` (and so `client`'s): the shared `reading_stack`."""
    return reading_stack


@pytest.fixture
def openai_client(stack: Stack, sdk_clients: SdkClients) -> openai.OpenAI:
    return sdk_clients.openai_client(stack.url)


def test_the_anthropic_sdk_lists_and_retrieves_the_default_models(
    client: anthropic.Anthropic,
) -> None:
    models = list(client.models.list())
    assert [m.id for m in models] == DEFAULT_IDS
    assert all(m.type == "model" and m.display_name for m in models)
    sonnet = client.models.retrieve("claude-sonnet-5-5")
    assert sonnet.display_name == "Claude Sonnet 5.5"
    assert sonnet.created_at == datetime(2026, 9, 28, tzinfo=UTC)
    assert client.models.retrieve("opus").display_name.startswith("Opus")


def test_the_anthropic_sdk_pages_through_the_models_in_both_directions(
    client: anthropic.Anthropic,
) -> None:
    first = client.models.list(limit=5)
    assert [m.id for m in first.data] == DEFAULT_IDS[:5]
    assert first.has_more and first.first_id == "claude-opus-5-5" and first.last_id == "opus"
    assert [m.id for m in client.models.list(limit=3)] == DEFAULT_IDS  # follows after_id
    before = client.models.list(before_id="sonnet", limit=2)
    assert [m.id for m in before.data] == ["claude-fable-5-2", "opus"] and before.has_more
    last = client.models.list(after_id="sonnet")
    assert [m.id for m in last.data] == ["haiku", "fable"] and not last.has_more


def test_the_openai_sdk_lists_and_retrieves_the_same_models(openai_client: openai.OpenAI) -> None:
    models = list(openai_client.models.list())
    assert [m.id for m in models] == DEFAULT_IDS
    assert all(m.object == "model" and m.owned_by == "anthropic" for m in models)
    haiku = openai_client.models.retrieve("claude-haiku-5-5")
    assert haiku.created == int(datetime(2026, 10, 7, tzinfo=UTC).timestamp())


def test_the_shape_follows_the_anthropic_version_header(stack: Stack) -> None:
    plain = loopback.get(f"{stack.url}/v1/models").json()
    assert plain["object"] == "list" and "has_more" not in plain
    anthropic_shape = loopback.get(
        f"{stack.url}/v1/models", headers={"anthropic-version": "2023-06-01"}
    ).json()
    assert "object" not in anthropic_shape and anthropic_shape["has_more"] is False


def test_an_unknown_model_is_not_found_in_both_sdks(
    client: anthropic.Anthropic, openai_client: openai.OpenAI
) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.models.retrieve("claude-nonexistent-9")
    body = caught.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "not_found_error"
    with pytest.raises(openai.NotFoundError):
        openai_client.models.retrieve("claude-nonexistent-9")


def test_the_model_list_comes_from_ccfleet_models(
    make_stack: StackFactory, sdk_clients: SdkClients
) -> None:
    stack = make_stack(CCFLEET_MODELS='["claude-haiku-5-5-20261007", "sonnet"]')
    client = sdk_clients.anthropic_client(stack.url)
    models = list(client.models.list())
    assert [m.id for m in models] == ["claude-haiku-5-5-20261007", "sonnet"]
    assert models[0].display_name == "Claude Haiku 5.5"
    assert models[0].created_at == datetime(2026, 10, 7, tzinfo=UTC)
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-sonnet-5-5")


def test_an_api_key_worker_publishes_upstream_models_which_the_front_ends_serve(
    make_stack: StackFactory,
    sdk_clients: SdkClients,
) -> None:
    stack = make_stack(
        workers=0,
        wait_ready=False,
        CCFLEET_MODELS='["claude-opus-5-5", "opus"]',
    )
    stack.upstream.models = [
        model_object("claude-opus-5-5", "Claude Opus 5.5", "2026-09-22T00:00:00Z"),
        model_object("claude-mythos-5-2", "Claude Mythos 5.2", "2026-11-09T00:00:00Z"),
    ]
    client = sdk_clients.anthropic_client(stack.url)
    wait_until(lambda: http_ok(f"{stack.url}/health"), 30, "the front end")
    assert [m.id for m in client.models.list()] == ["claude-opus-5-5", "opus"], "nothing published"

    stack.add_worker(ANTHROPIC_API_KEY=API_KEY, CLAUDE_CODE_OAUTH_TOKEN="")
    wait_until(
        lambda: len(client.models.list().data) == 3, 30, "the worker to publish upstream's list"
    )
    assert [m.id for m in client.models.list()] == ["claude-opus-5-5", "claude-mythos-5-2", "opus"]
    mythos = client.models.retrieve("claude-mythos-5-2")
    assert (mythos.display_name, mythos.created_at) == (
        "Claude Mythos 5.2",
        datetime(2026, 11, 9, tzinfo=UTC),
    )
    openai_ids = [m.id for m in sdk_clients.openai_client(stack.url, "k").models.list()]
    assert openai_ids == ["claude-opus-5-5", "claude-mythos-5-2", "opus"]
    asked = stack.upstream.model_list_requests
    assert asked and {r.headers["x-api-key"] for r in asked} == {API_KEY}


def test_count_tokens_returns_an_estimate_that_grows_with_the_input(
    client: anthropic.Anthropic,
) -> None:
    def count(text: str, **request: object) -> int:
        messages = [{"role": "user", "content": text}]
        result = client.messages.count_tokens(model=MODEL, messages=messages, **request)  # type: ignore[arg-type]  # request holds SDK params
        return result.input_tokens

    short = count("Hello")
    assert isinstance(short, int) and short > 0
    assert count("Hello " * 500) > short
    assert count("Hello", system="You answer in French. " * 40) > short
    weather = {"name": "weather", "input_schema": {"type": "object", "properties": {}}}
    assert count("Hello", tools=[weather]) > short
    raw = client.messages.with_raw_response.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "Hello"}]
    )
    assert raw.headers["x-ccfleet-token-count"] == "estimate"


def test_an_invalid_count_tokens_body_is_a_400_naming_the_field(
    client: anthropic.Anthropic,
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.count_tokens(model=MODEL, messages=[{"role": "user"}])  # type: ignore[list-item]  # the missing field is the point
    body = caught.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "invalid_request_error"
    assert "messages.0.content" in body["error"]["message"]
