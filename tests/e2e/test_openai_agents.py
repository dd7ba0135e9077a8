"""The OpenAI Agents SDK through ccfleet: an agent with a function tool, run with
`Runner.run_sync` (no streaming) and `Runner.run_streamed`, on the Responses API.

The SDK runs the tool itself and sends its output back on the next turn with the whole
history; the fake upstream behind the real CLI scripts the model's two turns and records what
the model saw. Each run goes through tests/e2e/conftest.py's `responses_stack` (replayed) and
its resident twin (`responses_both_paths`): the SDK's second request continues in the CLI
that asked for the tool, and the model gets what a replay sends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator

import openai
import pytest
from agents import Agent, OpenAIResponsesModel, RunConfig, Runner, RunResult, function_tool

from tests.e2e.conftest import MODEL, BothPaths, Endpoint, without_cli_additions
from tests.fakes.upstream import BlocksReply, Reply, TextReply, ToolUseBlock

pytestmark = pytest.mark.xdist_group("responses_stack")

NO_TRACING = RunConfig(tracing_disabled=True)  # traces would go to OpenAI's servers


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"18C and sunny in {city}"


@contextlib.contextmanager
def a_default_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A new default event loop for the thread, closed after: `run_sync` runs the agent on the
    default loop and leaves it open on purpose, but shuts its async generators down after each
    run, so a loop serves one `run_sync` (agents/run.py)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)


def weather_agent(client: openai.AsyncOpenAI) -> Agent:
    return Agent(
        name="forecaster",
        instructions="You answer questions about the weather.",
        model=OpenAIResponsesModel(model=MODEL, openai_client=client),
        tools=[get_weather],
    )


TWO_TURNS: list[Reply] = [
    BlocksReply([ToolUseBlock("toolu_agent1", "mcp__client__get_weather", {"city": "Paris"})]),
    TextReply("It is sunny in Paris."),
]


def assert_the_tool_output_reached_the_model(paths: BothPaths) -> None:
    first, second = paths.resident_bodies
    assert "You answer questions about the weather." in first["system"][-1]["text"]
    sent = without_cli_additions(second["messages"])
    results = [b for m in sent for b in m["content"] if b["type"] == "tool_result"]
    assert [r["tool_use_id"] for r in results] == ["toolu_agent1"]
    assert "18C and sunny in Paris" in json.dumps(results[0]["content"])


def test_run_sync_calls_the_tool_and_answers_resident_or_replayed(
    responses_both_paths: BothPaths,
) -> None:
    def run(to: Endpoint) -> RunResult:
        with a_default_loop() as loop:
            client = openai.AsyncOpenAI(base_url=f"{to.url}/v1", api_key=to.key, max_retries=0)
            try:
                return Runner.run_sync(
                    weather_agent(client), "Weather in Paris?", run_config=NO_TRACING
                )
            finally:
                loop.run_until_complete(client.close())  # its connections live on that loop

    result, replayed = responses_both_paths.session(run, TWO_TURNS, follow_ups=1)
    assert result.final_output == replayed.final_output == "It is sunny in Paris."
    assert_the_tool_output_reached_the_model(responses_both_paths)


def test_run_streamed_calls_the_tool_and_streams_the_answer_resident_or_replayed(
    responses_both_paths: BothPaths,
) -> None:
    def run(to: Endpoint) -> tuple[list[str], object]:
        return asyncio.run(_streamed(to))

    (kinds, final), replayed = responses_both_paths.session(run, TWO_TURNS, follow_ups=1)
    assert "raw_response_event" in kinds
    assert final == replayed[1] == "It is sunny in Paris."
    assert_the_tool_output_reached_the_model(responses_both_paths)


async def _streamed(to: Endpoint) -> tuple[list[str], object]:
    """The kinds of event `Runner.run_streamed` gave, and its final output."""
    async with openai.AsyncOpenAI(base_url=f"{to.url}/v1", api_key=to.key, max_retries=0) as client:
        result = Runner.run_streamed(
            weather_agent(client), "Weather in Paris?", run_config=NO_TRACING
        )
        kinds: list[str] = [event.type async for event in result.stream_events()]
    return kinds, result.final_output
