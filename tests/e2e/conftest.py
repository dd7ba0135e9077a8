"""Clients for the end-to-end tests (the real anthropic SDK, sync and async), the stack the
Responses API's modules share, and the two stacks that run conversations through both paths."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import anthropic
import pytest

from ccfleet.embedded_redis import EmbeddedRedis
from tests import client_keys, loopback
from tests.conftest import Stack
from tests.fakes.upstream import FakeUpstream, Reply
from tests.processes import wait_until
from tests.resident_fidelity import without_cli_reminders
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


Answer = TypeVar("Answer")


class Endpoint(NamedTuple):
    """Where a client sends a turn: a stack's URL and the client key it uses there."""

    url: str
    key: str = "client-key"


@dataclass
class BothPaths:
    """One fake upstream behind two stacks: `replayed` replays every turn's history in a fresh
    CLI (residents off, as other tests run), `resident` keeps the CLI that answered for the
    conversation's next turn. Each turn goes to both; `resident_bodies` are the upstream
    requests of the resident stack's turns, in order. `admin_key` reads the resident stack's
    /v1/fleet."""

    upstream: FakeUpstream
    replayed: Endpoint
    resident: Endpoint
    admin_key: str = "client-key"
    resident_bodies: list[dict[str, Any]] = field(default_factory=list)

    def turn(
        self,
        send: Callable[[Endpoint], Answer],
        reply: Reply,
        *,
        follow_up: bool,
        same: Callable[[Answer], object],
    ) -> Answer:
        """`send` through the resident stack, then the replayed one, each answered by `reply`;
        the resident stack's answer. Both stacks ask the model once and get the same answer
        (`same` picks what must be equal). A follow-up continued in the resident stack's CLI,
        and the model got what the replay sent it."""
        answer, replayed = self.session(send, [reply], follow_ups=int(follow_up))
        assert same(answer) == same(replayed)
        return answer

    def session(
        self,
        run: Callable[[Endpoint], Answer],
        replies: Sequence[Reply],
        *,
        follow_ups: int,
        comparable: Callable[[dict[str, Any]], str] = without_cli_reminders,
    ) -> tuple[Answer, Answer]:
        """`run` a client's session (one request per reply, the client sending each follow-up
        itself, as an agent loop does) through the resident stack, then the replayed one; the
        two answers. Each stack asked the model once per reply; `follow_ups` of the resident
        stack's requests continued in its CLI, and the model got what the replay sent it,
        request by request (`comparable`: a client whose own input differs from run to run
        takes that out too)."""
        hits, before = self.resident_hits(), len(self.upstream.requests)
        self.upstream.enqueue(*replies, *replies)
        answer, replayed = run(self.resident), run(self.replayed)
        bodies = [recorded.body for recorded in self.upstream.requests[before:]]
        assert len(bodies) == 2 * len(replies), "each stack asked the model once per reply"
        resident_bodies, replayed_bodies = bodies[: len(replies)], bodies[len(replies) :]
        self.resident_bodies.extend(resident_bodies)
        if follow_ups:
            wait_until(lambda: self.resident_hits() == hits + follow_ups, 10, "resident turns")
        for resident_body, replayed_body in zip(resident_bodies, replayed_bodies, strict=True):
            assert comparable(resident_body) == comparable(replayed_body)
        return answer, replayed

    def resident_hits(self) -> int:
        headers = {"authorization": f"Bearer {self.admin_key}"}
        fleet = loopback.get(f"{self.resident.url}/v1/fleet", headers=headers, timeout=5).json()
        return sum(worker["resident_hits"] for worker in fleet["workers"])


def _started_stack(
    running: contextlib.ExitStack, root: Path, upstream: FakeUpstream, claude_bin: str, **env: str
) -> Stack:
    """A stack of one front end and one worker, stopped with `running` (not yet ready)."""
    server = running.enter_context(EmbeddedRedis(root / "redis"))
    stack = Stack(redis=server, upstream=upstream, claude_bin=claude_bin, root=root)
    running.callback(stack.stop)
    stack.add_worker(**env)
    stack.add_api(**env)
    return stack


# One resident CLI is enough: a test runs one conversation.
_RESIDENT_ENV = {"CCFLEET_RESIDENT_MAX": "1", "CCFLEET_RESIDENT_IDLE_S": "60"}


@pytest.fixture(scope="package")
def path_stacks(
    tmp_path_factory: pytest.TempPathFactory, session_upstream: FakeUpstream, claude_bin: str
) -> Iterator[tuple[Stack, Stack]]:
    """The replayed and the resident stack of `both_paths`, shared by the multi-turn tests (in
    xdist group `both_paths`)."""
    with contextlib.ExitStack() as running:
        root = tmp_path_factory.mktemp
        replayed = _started_stack(running, root("replayed"), session_upstream, claude_bin)
        resident = _started_stack(
            running, root("resident"), session_upstream, claude_bin, **_RESIDENT_ENV
        )
        replayed.wait_ready()
        resident.wait_ready()
        yield replayed, resident


@pytest.fixture
def both_paths(path_stacks: tuple[Stack, Stack], upstream: FakeUpstream) -> BothPaths:
    """Each turn of a test's conversation through both paths (`BothPaths.turn`)."""
    replayed, resident = path_stacks
    return BothPaths(upstream, Endpoint(replayed.url), Endpoint(resident.url))


class ResponsesKeys(NamedTuple):
    mine: str
    other: str


def _responses_key(stack: Stack, name: str, **limits: Any) -> str:
    secret = RESPONSES_AUTH_ENV["CCFLEET_AUTH_SECRET"]
    return asyncio.run(client_keys.create_key(stack.redis.url, secret, name, **limits))


@pytest.fixture(scope="package")
def responses_keys(responses_stack: Stack) -> ResponsesKeys:
    """Two client keys of `responses_stack`: the tests' own, and another client's."""
    return ResponsesKeys(
        _responses_key(responses_stack, "responses-client"),
        _responses_key(responses_stack, "another-client"),
    )


@pytest.fixture(scope="package")
def responses_resident(
    tmp_path_factory: pytest.TempPathFactory, session_upstream: FakeUpstream, claude_bin: str
) -> Iterator[tuple[Endpoint, str]]:
    """`responses_stack`'s twin with resident CLIs on, the resident path of
    `responses_both_paths`: the endpoint with a key named as `responses_keys.mine`, and an
    admin key."""
    with contextlib.ExitStack() as running:
        root = tmp_path_factory.mktemp("responses-resident")
        env = {**RESPONSES_AUTH_ENV, "CCFLEET_JOB_MAX_ATTEMPTS": "1", **_RESIDENT_ENV}
        stack = _started_stack(running, root, session_upstream, claude_bin, **env)
        stack.wait_ready()
        key = _responses_key(stack, "responses-client")
        yield Endpoint(stack.url, key), _responses_key(stack, "ops", admin=True)


@pytest.fixture
def responses_both_paths(
    responses_stack: Stack,
    responses_keys: ResponsesKeys,
    responses_resident: tuple[Endpoint, str],
    upstream: FakeUpstream,
) -> BothPaths:
    """Each turn of a Responses conversation through `responses_stack` (replayed) and its
    resident twin."""
    resident, admin_key = responses_resident
    return BothPaths(
        upstream, Endpoint(responses_stack.url, responses_keys.mine), resident, admin_key
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
