"""The OpenAI Agents SDK through ccfleet: an agent with a function tool, run with
`Runner.run_sync` (no streaming) and `Runner.run_streamed`, on the Responses API.

The SDK runs the tool itself and sends its output back on the next turn with the whole
history; the fake upstream behind the real CLI scripts the model's two turns and records what
the model saw. The stack is tests/e2e/conftest.py's `responses_stack`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import openai
import pytest
from agents import Agent, OpenAIResponsesModel, RunConfig, Runner, function_tool

from tests.conftest import Stack
from tests.e2e.conftest import MODEL, ResponsesKeys, without_cli_additions
from tests.fakes.upstream import BlocksReply, FakeUpstream, TextReply, ToolUseBlock

pytestmark = pytest.mark.xdist_group("responses_stack")

NO_TRACING = RunConfig(tracing_disabled=True)  # traces would go to OpenAI's servers


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"18C and sunny in {city}"


@pytest.fixture
def stack(responses_stack: Stack, upstream: FakeUpstream) -> Stack:
    """The shared stack, with the fake upstream's script emptied."""
    return responses_stack


@pytest.fixture
def default_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """The thread's default event loop, closed after the test: `run_sync` runs the agent on
    the default loop and leaves it open on purpose (agents/run.py)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)


@pytest.fixture
def client(
    stack: Stack, default_loop: asyncio.AbstractEventLoop, responses_keys: ResponsesKeys
) -> Iterator[openai.AsyncOpenAI]:
    """A client whose connections live on the default loop, closed on it."""
    client = openai.AsyncOpenAI(
        base_url=f"{stack.url}/v1", api_key=responses_keys.mine, max_retries=0
    )
    yield client
    default_loop.run_until_complete(client.close())


def weather_agent(client: openai.AsyncOpenAI) -> Agent:
    return Agent(
        name="forecaster",
        instructions="You answer questions about the weather.",
        model=OpenAIResponsesModel(model=MODEL, openai_client=client),
        tools=[get_weather],
    )


def script_two_turns(stack: Stack) -> None:
    call = ToolUseBlock("toolu_agent1", "mcp__client__get_weather", {"city": "Paris"})
    stack.upstream.enqueue(BlocksReply([call]), TextReply("It is sunny in Paris."))


def assert_the_tool_output_reached_the_model(stack: Stack) -> None:
    first, second = stack.upstream.requests
    assert "You answer questions about the weather." in first.body["system"][-1]["text"]
    sent = without_cli_additions(second.body["messages"])
    results = [b for m in sent for b in m["content"] if b["type"] == "tool_result"]
    assert [r["tool_use_id"] for r in results] == ["toolu_agent1"]
    assert "18C and sunny in Paris" in json.dumps(results[0]["content"])


def test_run_sync_calls_the_tool_and_answers(stack: Stack, client: openai.AsyncOpenAI) -> None:
    script_two_turns(stack)
    result = Runner.run_sync(weather_agent(client), "Weather in Paris?", run_config=NO_TRACING)
    assert result.final_output == "It is sunny in Paris."
    assert_the_tool_output_reached_the_model(stack)


async def test_run_streamed_calls_the_tool_and_streams_the_answer(
    stack: Stack, responses_keys: ResponsesKeys
) -> None:
    script_two_turns(stack)
    async with openai.AsyncOpenAI(
        base_url=f"{stack.url}/v1", api_key=responses_keys.mine, max_retries=0
    ) as client:
        result = Runner.run_streamed(
            weather_agent(client), "Weather in Paris?", run_config=NO_TRACING
        )
        kinds = [event.type async for event in result.stream_events()]
    assert "raw_response_event" in kinds
    assert result.final_output == "It is sunny in Paris."
    assert_the_tool_output_reached_the_model(stack)
