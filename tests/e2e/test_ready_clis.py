"""Ready CLIs (worker/cli/pool.py) with the real CLI: a request served by a CLI started ahead
reaches the model exactly as a cold one does, a request with client tools too, and none is
left behind when the worker stops."""

from __future__ import annotations

from typing import Any

from anthropic.types import MessageParam

from tests import loopback
from tests.conftest import Stack, StackFactory
from tests.e2e.conftest import as_blocks, without_cli_additions
from tests.fakes.upstream import BlocksReply, ToolUseBlock
from tests.processes import wait_until
from tests.sdk import SdkClients

# A model that takes a thinking budget (for the 5.x models the CLI thinks adaptively).
MODEL = "claude-haiku-4-5"

LOOKUP_INPUT: dict[str, object] = {"type": "object", "properties": {}}
HISTORY: list[MessageParam] = [
    {"role": "user", "content": "My name is Ada."},
    {"role": "assistant", "content": "Hello Ada."},
    {"role": "user", "content": "What is my name?"},
]


def worker_info(stack: Stack) -> dict[str, Any]:
    workers: list[dict[str, Any]] = loopback.get(f"{stack.url}/v1/fleet", timeout=5).json()[
        "workers"
    ]
    assert len(workers) == 1
    return workers[0]


def test_a_ready_cli_answers_a_multi_turn_request_exactly_and_none_outlives_the_worker(
    make_stack: StackFactory,
    sdk_clients: SdkClients,
) -> None:
    stack = make_stack(CCFLEET_PREWARM_CLIS="1")
    client = sdk_clients.anthropic_client(stack.url, "k")
    cold = client.messages.create(
        model=MODEL, max_tokens=900, system="Cold.", messages=[{"role": "user", "content": "hi"}]
    )
    assert cold.content
    wait_until(lambda: worker_info(stack)["ready_clis"] == 1, 30, "a ready CLI for the shape")

    warm = client.messages.create(
        model=MODEL,
        max_tokens=900,
        system="You remember names.",
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=HISTORY,
    )
    assert warm.content
    wait_until(lambda: worker_info(stack)["ready_hits"] == 1, 10, "the hit in a heartbeat")
    assert worker_info(stack)["ready_misses"] == 1

    sent = stack.upstream.requests[-1].body
    assert sent["model"] == MODEL and sent["max_tokens"] == 900
    assert sent["system"][-1]["text"] == "You remember names."
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024, "display": "updates"}
    assert without_cli_additions(sent["messages"]) == as_blocks(HISTORY)
    cold_sent = stack.upstream.requests[0].body
    assert cold_sent["system"][-1]["text"] == "Cold."
    assert cold_sent["thinking"] == {"type": "disabled"}, "no thinking unless asked, as on the API"

    wait_until(lambda: worker_info(stack)["ready_clis"] == 1, 30, "the pool refilled")
    # Client tools go in after spawn too (an SDK MCP server and a hook callback).
    stack.upstream.enqueue(BlocksReply([ToolUseBlock("toolu_1", "mcp__client__lookup", {})]))
    with_tools = client.messages.create(
        model=MODEL,
        max_tokens=900,
        tools=[{"name": "lookup", "description": "Look it up.", "input_schema": LOOKUP_INPUT}],
        messages=[{"role": "user", "content": "Look it up."}],
    )
    assert [(b.type, getattr(b, "name", "")) for b in with_tools.content] == [
        ("tool_use", "lookup")
    ]
    assert with_tools.stop_reason == "tool_use"
    assert [t["name"] for t in stack.upstream.requests[-1].body["tools"]] == ["mcp__client__lookup"]
    wait_until(lambda: worker_info(stack)["ready_hits"] == 2, 10, "the tool request a hit")

    wait_until(lambda: worker_info(stack)["ready_clis"] == 1, 30, "the pool refilled")
    assert stack.clis(), "a ready CLI is waiting"
    stack.workers[0].stop()
    wait_until(lambda: not stack.clis(), 10, "no CLI left after the worker")
