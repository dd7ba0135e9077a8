"""Clients for the end-to-end tests (the real anthropic SDK, sync and async) and the stack the
Responses API's modules share."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import anthropic
import pytest

from ccfleet.embedded_redis import EmbeddedRedis
from tests import client_keys
from tests.conftest import Stack
from tests.fakes.upstream import FakeUpstream
from tests.sdk import SdkClients

MODEL = "claude-sonnet-5-5"
RESPONSES_AUTH_ENV = {
    "CCFLEET_AUTH": "on",
    "CCFLEET_AUTH_SECRET": "responses-test-secret-" + "0123456789abcdef" * 2,
}


@pytest.fixture
def client(stack: Stack, sdk_clients: SdkClients) -> anthropic.Anthropic:
    return sdk_clients.anthropic_client(stack.url)


@pytest.fixture
async def async_client(stack: Stack) -> AsyncIterator[anthropic.AsyncAnthropic]:
    url, key = stack.url, "client-key"
    async with anthropic.AsyncAnthropic(base_url=url, api_key=key, max_retries=0) as client:
        yield client


@pytest.fixture(scope="package")
def responses_stack(
    tmp_path_factory: pytest.TempPathFactory, session_upstream: FakeUpstream, claude_bin: str
) -> Iterator[Stack]:
    """One stack for the Responses API's modules (test_openai_responses.py, test_codex.py,
    test_openai_agents.py, all in xdist group `responses_stack`): one front end and one worker
    with the real CLI, client keys on (`responses_keys`)."""
    root = tmp_path_factory.mktemp("responses")
    with EmbeddedRedis(root / "redis") as server:
        stack = Stack(redis=server, upstream=session_upstream, claude_bin=claude_bin, root=root)
        try:
            # A refused request is not tried on other accounts: one upstream error is enough.
            env = {**RESPONSES_AUTH_ENV, "CCFLEET_JOB_MAX_ATTEMPTS": "1"}
            stack.add_worker(**env)
            stack.add_api(**env)
            stack.wait_ready()
            yield stack
        finally:
            stack.stop()


class ResponsesKeys(NamedTuple):
    mine: str
    other: str


@pytest.fixture(scope="package")
def responses_keys(responses_stack: Stack) -> ResponsesKeys:
    """Two client keys of `responses_stack`: the tests' own, and another client's."""
    redis_url, secret = responses_stack.redis.url, RESPONSES_AUTH_ENV["CCFLEET_AUTH_SECRET"]
    return ResponsesKeys(
        asyncio.run(client_keys.create_key(redis_url, secret, "responses-client")),
        asyncio.run(client_keys.create_key(redis_url, secret, "another-client")),
    )


def without_cli_additions(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Upstream messages less what the CLI adds (docs/architecture.md: "What the model sees").

    For models that take mid-conversation system messages (the 5.x family), the CLI appends a
    `system` message with the environment; clients cannot send that role. The CLI puts
    `<system-reminder>` text blocks into the first and last user messages (environment,
    model, date) and a cache_control breakpoint on the last block; where it added blocks to a
    string content, the string became a text block. A last message of only tool results gets
    the date reminder appended to the last result's text instead.
    """
    cleaned = []
    for message in messages:
        if message["role"] == "system":
            continue
        content = message["content"]
        if isinstance(content, list):
            content = [
                _without_reminder(block)
                for block in content
                if not (
                    block.get("type") == "text"
                    and block.get("text", "").lstrip().startswith("<system-reminder>")
                )
            ]
        cleaned.append({**message, "content": content})
    return cleaned


_APPENDED_REMINDER = re.compile(r"\n\n<system-reminder>\n.*</system-reminder>$", re.DOTALL)


def _without_reminder(block: dict[str, Any]) -> dict[str, Any]:
    block = {k: v for k, v in block.items() if k != "cache_control"}
    if block.get("type") == "tool_result" and isinstance(block.get("content"), str):
        block["content"] = _APPENDED_REMINDER.sub("", block["content"])
    elif block.get("type") == "tool_result" and isinstance(block.get("content"), list):
        block["content"] = [_without_reminder(inner) for inner in block["content"]]
    elif block.get("type") == "text":
        block["text"] = _APPENDED_REMINDER.sub("", block["text"])
    return block


def as_blocks(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The client's messages with string content written as one text block."""
    return [
        {
            **m,
            "content": [{"type": "text", "text": m["content"]}]
            if isinstance(m["content"], str)
            else m["content"],
        }
        for m in messages
    ]
