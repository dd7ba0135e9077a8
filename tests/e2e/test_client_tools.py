"""Client-defined tools: the model sees them, the client runs them, the loop continues exactly."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import anthropic
import pytest
from anthropic.types import CacheControlEphemeralParam, Message, ToolChoiceParam, ToolParam

from tests import loopback
from tests.conftest import Stack, StackFactory
from tests.e2e.conftest import MODEL, BothPaths, Endpoint, without_cli_additions
from tests.fakes.upstream import BlocksReply, Reply, TextBlock, TextReply, ToolUseBlock
from tests.processes import wait_until
from tests.sdk import text_of

WEATHER: ToolParam = {
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
        "required": ["city"],
    },
}
CLOCK: ToolParam = {
    "name": "get_time",
    "description": "Current time.",
    "input_schema": {"type": "object", "properties": {}},
}


def _tool_round(
    paths: BothPaths, messages: list[Any], reply: Reply, *, stream: bool, follow_up: bool
) -> Message:
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 500,
        "tools": [WEATHER, CLOCK],
        "messages": messages,
    }

    def send(to: Endpoint) -> Message:
        with anthropic.Anthropic(base_url=to.url, api_key=to.key, max_retries=0) as client:
            if stream:
                with client.messages.stream(**kwargs) as events:
                    return events.get_final_message()
            whole: Message = client.messages.create(**kwargs)
            return whole

    return paths.turn(send, reply, follow_up=follow_up, same=lambda message: message.content)


@pytest.mark.xdist_group("both_paths")
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_two_round_tool_loop_runs_exactly_resident_or_replayed(
    both_paths: BothPaths, stream: bool
) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris and Rome, and the time?"}]
    checking = BlocksReply(
        [
            TextBlock("Checking both."),
            ToolUseBlock("toolu_01", "mcp__client__get_weather", {"city": "Paris", "unit": "c"}),
            ToolUseBlock("toolu_02", "mcp__client__get_time", {}),
        ]
    )
    first = _tool_round(both_paths, messages, checking, stream=stream, follow_up=False)
    assert first.stop_reason == "tool_use"
    calls = [block for block in first.content if block.type == "tool_use"]
    assert [(c.id, c.name, c.input) for c in calls] == [
        ("toolu_01", "get_weather", {"city": "Paris", "unit": "c"}),
        ("toolu_02", "get_time", {}),
    ]
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01",
                    "content": [{"type": "text", "text": "18C"}],
                },
                {"type": "tool_result", "tool_use_id": "toolu_02", "content": "noon"},
            ],
        },
    ]
    rome = BlocksReply([ToolUseBlock("toolu_03", "mcp__client__get_weather", {"city": "Rome"})])
    second = _tool_round(both_paths, messages, rome, stream=stream, follow_up=True)
    assert [(b.name, b.input) for b in second.content if b.type == "tool_use"] == [
        ("get_weather", {"city": "Rome"})
    ]
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in second.content]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_03",
                    "content": "unknown city",
                    "is_error": True,
                }
            ],
        },
    ]
    done = TextReply("Paris is 18C at noon; Rome is 25C.")
    third = _tool_round(both_paths, messages, done, stream=stream, follow_up=True)
    assert third.stop_reason == "end_turn"
    assert text_of(third) == "Paris is 18C at noon; Rome is 25C."

    # Each round asked the model once on each path: the CLI never ran a tool by itself.
    first_sent, _, last_sent = both_paths.resident_bodies
    tools_sent = {tool["name"]: tool for tool in first_sent["tools"]}
    assert tools_sent["mcp__client__get_weather"]["description"] == WEATHER["description"]
    assert tools_sent["mcp__client__get_weather"]["input_schema"] == WEATHER["input_schema"]
    assert tools_sent["mcp__client__get_time"]["input_schema"] == CLOCK["input_schema"]
    last = without_cli_additions(last_sent["messages"])
    assert last[2]["content"] == messages[2]["content"]  # tool results of round one, exactly
    assert last[4]["content"] == messages[4]["content"]  # the is_error result of round two
    assert last[1]["content"][1]["name"] == "mcp__client__get_weather"
    assert last[1]["content"][1]["id"] == "toolu_01"


def test_stop_sequences_end_the_text_before_the_match(
    stack: Stack, client: anthropic.Anthropic
) -> None:
    text = "Counting: one, two, STOP three, four."
    stack.upstream.enqueue(TextReply(text, chunk_chars=3), TextReply(text, chunk_chars=3))
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 100,
        "stop_sequences": ["never", " STOP"],
        "messages": [{"role": "user", "content": "Count."}],
    }
    whole = client.messages.create(**kwargs)
    with client.messages.stream(**kwargs) as stream:
        streamed_text = "".join(stream.text_stream)
        streamed = stream.get_final_message()
    for message in (whole, streamed):
        assert text_of(message) == "Counting: one, two,"
        assert message.stop_reason == "stop_sequence"
        assert message.stop_sequence == " STOP"
        assert message.usage.output_tokens > 0
    assert streamed_text == "Counting: one, two,"


def test_max_tokens_and_the_thinking_budget_reach_the_model(
    stack: Stack, client: anthropic.Anthropic
) -> None:
    # A model that takes a thinking budget: for the 5.x models the CLI sends adaptive thinking
    # whatever the budget (docs/architecture.md: Every request field).
    budgeted = "claude-haiku-4-5"
    client.messages.create(
        model=budgeted,
        max_tokens=3000,
        thinking={"type": "enabled", "budget_tokens": 1500},
        messages=[{"role": "user", "content": "Think."}],
    )
    client.messages.create(
        model=budgeted, max_tokens=777, messages=[{"role": "user", "content": "Quick."}]
    )
    thinking_request, plain_request = (r.body for r in stack.upstream.requests)
    assert thinking_request["max_tokens"] == 3000
    assert thinking_request["thinking"]["budget_tokens"] == 1500
    assert plain_request["max_tokens"] == 777
    assert plain_request["thinking"] == {"type": "disabled"}


def _breakpoints(body: dict[str, Any]) -> int:
    count = 0
    for block in body.get("system") or []:
        count += "cache_control" in block
    for tool in body.get("tools") or []:
        count += "cache_control" in tool
    for message in body["messages"]:
        if isinstance(message["content"], list):
            count += sum("cache_control" in block for block in message["content"])
    return count


def test_fields_the_cli_cannot_take_are_accepted_and_breakpoints_stay_within_four(
    stack: Stack, client: anthropic.Anthropic
) -> None:
    cached: CacheControlEphemeralParam = {"type": "ephemeral"}
    message = client.messages.create(
        model="claude-sonnet-5-5",  # the CLI sends an effort only for models that take one
        max_tokens=100,
        extra_body={"temperature": 0.2, "top_p": 0.9, "top_k": 5},
        output_config={"effort": "high"},
        speed="standard",
        inference_geo="us",
        metadata={"user_id": "user-123"},
        service_tier="auto",
        tools=[WEATHER],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        system=[{"type": "text", "text": "Be brief.", "cache_control": cached}],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "a", "cache_control": cached}]},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "b", "cache_control": cached}],
            },
            {"role": "user", "content": [{"type": "text", "text": "c", "cache_control": cached}]},
        ],
    )
    assert text_of(message) == "Hello from the fake upstream."
    sent = stack.upstream.requests[0].body
    assert _breakpoints(sent) <= 4
    assert sent["output_config"]["effort"] == "high"


@pytest.mark.parametrize(
    "tool_choice",
    [{"type": "none"}, {"type": "any"}, {"type": "tool", "name": "get_weather"}],
    ids=["none", "any", "tool"],
)
def test_tool_choice_is_honoured_as_far_as_the_cli_allows(
    stack: Stack, client: anthropic.Anthropic, tool_choice: ToolChoiceParam
) -> None:
    client.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=[WEATHER],
        tool_choice=tool_choice,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
    )
    sent = stack.upstream.requests[0].body
    system_text = sent["system"][-1]["text"]
    if tool_choice["type"] == "none":
        assert sent["tools"] == []
    elif tool_choice["type"] == "any":
        assert "must call one of the available tools" in system_text
    else:
        assert "must call the tool mcp__client__get_weather" in system_text


def test_claude_code_itself_runs_an_agent_loop_through_ccfleet_in_a_resident_cli(
    make_stack: StackFactory, tmp_path: Any
) -> None:
    """The real CLI as the client: its own tools reach the model, it runs the Bash calls the
    model asks for, and each result comes back to the model in the next request. Each request
    sends back the conversation with the tool's result and its cache breakpoint moved to the
    new last message: the turns after the first continue in the CLI that answered the one
    before (no replay)."""
    stack = make_stack(CCFLEET_RESIDENT_MAX="4")
    calls = [("toolu_cc_1", "echo ccfleet-tool-ran"), ("toolu_cc_2", "echo two")]
    stack.upstream.enqueue(
        *(
            BlocksReply([ToolUseBlock(id_, "mcp__client__Bash", {"command": command})])
            for id_, command in calls
        ),
        TextReply("Both ran."),
    )
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "ANTHROPIC_BASE_URL": stack.url,
        "ANTHROPIC_API_KEY": "client-key",
        "CLAUDE_CONFIG_DIR": str(tmp_path / "client-config"),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    done = subprocess.run(
        [
            stack.claude_bin,
            "-p",
            "Run echo ccfleet-tool-ran, then echo two",
            "--allowedTools",
            "Bash",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Both ran." in done.stdout
    first, second, _ = (r.body for r in stack.upstream.requests)
    assert "mcp__client__Bash" in {tool["name"] for tool in first["tools"]}
    results = [
        block
        for message in second["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]
    assert results and results[0]["tool_use_id"] == "toolu_cc_1"
    assert "ccfleet-tool-ran" in json.dumps(results[0]["content"])

    def resident_hits() -> int:
        workers = loopback.get(f"{stack.url}/v1/fleet", timeout=5).json()["workers"]
        return sum(worker["resident_hits"] for worker in workers)

    wait_until(lambda: resident_hits() == 2, 10, "two resident turns in the heartbeat")
