"""POST /v1/responses with the official openai SDK, through the real stack and CLI.

The stack is tests/e2e/conftest.py's `responses_stack` (the fake upstream behind it records
what the model saw); each test scripts its own replies.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import openai
import pytest
from openai.types.responses import Response, ResponseInputParam, ToolParam
from openai.types.responses.response_input_param import ItemReference
from redis.asyncio import Redis

from api.telemetry.request_stats_writer import PAUSE_S
from shared.telemetry.request_stats import read_request_stats
from tests import client_keys, loopback
from tests.conftest import Stack
from tests.e2e.conftest import (
    MODEL,
    RESPONSES_AUTH_ENV,
    BothPaths,
    Endpoint,
    ResponsesKeys,
    without_cli_additions,
)
from tests.fakes.upstream import (
    BlocksReply,
    ErrorReply,
    FakeUpstream,
    HangReply,
    MidStreamErrorReply,
    TextBlock,
    TextReply,
    ThinkingBlock,
    ToolUseBlock,
)
from tests.sdk import SdkClients
from tests.waiting import wait_until

pytestmark = pytest.mark.xdist_group("responses_stack")

CLI_TOOL = "mcp__client__"  # what the model's tool names start with (worker/tools/client_tools.py)
WEATHER: ToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
# As Codex sends them: a namespace of function tools, and a hosted tool ccfleet cannot run.
AGENTS_NAMESPACE: dict[str, Any] = {
    "type": "namespace",
    "name": "agents",
    "description": "Sub-agents.",
    "tools": [
        {
            "type": "function",
            "name": "close_agent",
            "description": "Close an agent.",
            "strict": False,
            "parameters": {
                "type": "object",
                "properties": {"target": {"type": "string"}},
                "required": ["target"],
            },
        }
    ],
}
WEB_SEARCH: dict[str, Any] = {"type": "web_search", "external_web_access": False}
# A freeform tool, as Codex offers apply_patch to some models.
APPLY_PATCH: ToolParam = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Apply a patch.",
    "format": {"type": "grammar", "syntax": "lark", "definition": "start: /(.|\\n)+/"},
}


@pytest.fixture
def stack(responses_stack: Stack, upstream: FakeUpstream) -> Stack:
    """The module's stack, with the fake upstream's script emptied."""
    return responses_stack


@pytest.fixture
def oai(stack: Stack, sdk_clients: SdkClients, responses_keys: ResponsesKeys) -> openai.OpenAI:
    return sdk_clients.openai_client(stack.url, key=responses_keys.mine)


@pytest.fixture
def auth(responses_keys: ResponsesKeys) -> dict[str, str]:
    """The headers of a plain HTTP request with the tests' key."""
    return {"authorization": f"Bearer {responses_keys.mine}"}


def test_a_response_carries_the_text_status_and_usage(stack: Stack, oai: openai.OpenAI) -> None:
    stack.upstream.enqueue(TextReply("Hello there.", input_tokens=21, output_tokens=7))
    raw = oai.responses.with_raw_response.create(model=MODEL, input="Say hello.")
    response = raw.parse()
    assert raw.headers["x-request-id"].startswith("req_")
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == MODEL
    assert response.output_text == "Hello there."
    [message] = response.output
    assert message.type == "message" and message.role == "assistant"
    assert response.usage is not None
    assert response.usage.output_tokens == 7
    assert response.usage.input_tokens >= 21  # plus what the CLI's cache reports
    assert response.usage.total_tokens == response.usage.input_tokens + 7


def test_instructions_and_developer_messages_are_the_system_prompt_and_turns_stay_turns(
    stack: Stack, oai: openai.OpenAI
) -> None:
    conversation: ResponseInputParam = [
        {"role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]},
        {"role": "user", "content": "<environment_context>cwd</environment_context>"},
        {"role": "user", "content": [{"type": "input_text", "text": "What is 2+2?"}]},
        {
            "type": "message",
            "role": "assistant",
            "id": "msg_earlier",
            "status": "completed",
            "content": [{"type": "output_text", "text": "4.", "annotations": []}],
        },
        {"role": "user", "content": "And times 3?"},
    ]
    oai.responses.create(model=MODEL, instructions="You are a pirate.", input=conversation)
    sent = stack.upstream.requests[0].body
    assert sent["system"][-1]["text"] == "You are a pirate.\n\nBe brief."
    assert without_cli_additions(sent["messages"]) == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<environment_context>cwd</environment_context>"},
                {"type": "text", "text": "What is 2+2?"},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "4."}]},
        {"role": "user", "content": [{"type": "text", "text": "And times 3?"}]},
    ]


def _responding(**kwargs: Any) -> Callable[[Endpoint], Response]:
    def send(to: Endpoint) -> Response:
        with openai.OpenAI(base_url=f"{to.url}/v1", api_key=to.key, max_retries=0) as oai:
            response: Response = oai.responses.create(model=MODEL, **kwargs)
            return response

    return send


def _output(response: Response) -> object:
    return [item.model_dump(exclude={"id"}) for item in response.output]


def test_a_function_tool_round_trip_names_namespaced_tools_back_and_hides_hosted_ones(
    responses_both_paths: BothPaths,
) -> None:
    paths = responses_both_paths
    call = ToolUseBlock("toolu_01", f"{CLI_TOOL}agents__close_agent", {"target": "a1"})
    tools: list[Any] = [WEATHER, AGENTS_NAMESPACE, WEB_SEARCH]
    first = paths.turn(
        _responding(input="Close agent a1.", tools=tools),
        BlocksReply([TextBlock("Closing it."), call]),
        follow_up=False,
        same=_output,
    )
    offered = [tool["name"] for tool in paths.resident_bodies[0]["tools"]]
    assert f"{CLI_TOOL}get_weather" in offered
    assert f"{CLI_TOOL}agents__close_agent" in offered
    assert not any("web_search" in name for name in offered)
    assert first.status == "completed"
    message, function_call = first.output
    assert message.type == "message" and first.output_text == "Closing it."
    assert function_call.type == "function_call"
    assert (function_call.name, function_call.namespace) == ("close_agent", "agents")
    assert function_call.call_id == "toolu_01"
    assert json.loads(function_call.arguments) == {"target": "a1"}

    history: list[Any] = [
        {"role": "user", "content": "Close agent a1."},
        *[item.model_dump(exclude_none=True) for item in first.output],
        {"type": "function_call_output", "call_id": "toolu_01", "output": "closed"},
    ]
    follow_up = paths.turn(
        _responding(input=history, tools=tools),
        TextReply("Closed."),
        follow_up=True,
        same=_output,
    )
    assert follow_up.output_text == "Closed."
    sent = without_cli_additions(paths.resident_bodies[-1]["messages"])
    uses = [b for b in sent[1]["content"] if b["type"] == "tool_use"]
    assert [(u["id"], u["name"]) for u in uses] == [("toolu_01", f"{CLI_TOOL}agents__close_agent")]
    results = [b for b in sent[2]["content"] if b["type"] == "tool_result"]
    assert [r["tool_use_id"] for r in results] == ["toolu_01"]
    assert "closed" in json.dumps(results[0]["content"])


def test_a_custom_tool_is_offered_with_one_string_input_and_its_call_round_trips(
    stack: Stack, oai: openai.OpenAI
) -> None:
    patch = "*** Begin Patch\n*** Add File: a.txt\n+hello\n*** End Patch"
    call = ToolUseBlock("toolu_03", f"{CLI_TOOL}apply_patch", {"input": patch})
    stack.upstream.enqueue(BlocksReply([call], chunk_chars=4))
    with oai.responses.stream(model=MODEL, input="Patch it.", tools=[APPLY_PATCH]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    offered = {tool["name"]: tool for tool in stack.upstream.requests[0].body["tools"]}
    schema = offered[f"{CLI_TOOL}apply_patch"]["input_schema"]
    assert schema["properties"]["input"]["type"] == "string" and schema["required"] == ["input"]
    [item] = final.output
    assert item.type == "custom_tool_call"
    assert (item.name, item.call_id, item.input) == ("apply_patch", "toolu_03", patch)
    deltas = [e.delta for e in events if e.type == "response.custom_tool_call_input.delta"]
    assert "".join(deltas) == patch

    stack.upstream.reset()
    stack.upstream.enqueue(TextReply("Patched."))
    history: list[Any] = [
        {"role": "user", "content": "Patch it."},
        item.model_dump(exclude_none=True),
        {"type": "custom_tool_call_output", "call_id": "toolu_03", "output": "Done!"},
    ]
    follow_up = oai.responses.create(model=MODEL, input=history, tools=[APPLY_PATCH])
    assert follow_up.output_text == "Patched."
    sent = without_cli_additions(stack.upstream.requests[-1].body["messages"])
    [use] = [b for b in sent[1]["content"] if b["type"] == "tool_use"]
    assert (use["id"], use["name"], use["input"]) == (
        "toolu_03",
        f"{CLI_TOOL}apply_patch",
        {"input": patch},
    )
    [result] = [b for b in sent[2]["content"] if b["type"] == "tool_result"]
    assert result["tool_use_id"] == "toolu_03" and "Done!" in json.dumps(result["content"])


def test_a_custom_tool_inside_a_namespace_is_offered_flat_and_its_call_named_back(
    stack: Stack, oai: openai.OpenAI
) -> None:
    patch = "*** Begin Patch\n*** Delete File: old.txt\n*** End Patch"
    namespace: Any = {
        "type": "namespace",
        "name": "editor",
        "description": "Editing tools.",
        "tools": [APPLY_PATCH],
    }
    call = ToolUseBlock("toolu_04", f"{CLI_TOOL}editor__apply_patch", {"input": patch})
    stack.upstream.enqueue(BlocksReply([call], chunk_chars=4), TextReply("Deleted."))
    with oai.responses.stream(model=MODEL, input="Delete old.txt.", tools=[namespace]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    offered = {tool["name"]: tool for tool in stack.upstream.requests[0].body["tools"]}
    schema = offered[f"{CLI_TOOL}editor__apply_patch"]["input_schema"]
    assert schema["properties"]["input"]["type"] == "string" and schema["required"] == ["input"]
    [item] = final.output
    assert item.type == "custom_tool_call"
    assert (item.namespace, item.name, item.call_id, item.input) == (
        "editor",
        "apply_patch",
        "toolu_04",
        patch,
    )
    [added] = [e.item for e in events if e.type == "response.output_item.added"]
    assert added.type == "custom_tool_call"
    assert (added.namespace, added.name) == ("editor", "apply_patch")

    history: list[Any] = [
        {"role": "user", "content": "Delete old.txt."},
        item.model_dump(exclude_none=True),
        {"type": "custom_tool_call_output", "call_id": "toolu_04", "output": "Done!"},
    ]
    follow_up = oai.responses.create(model=MODEL, input=history, tools=[namespace])
    assert follow_up.output_text == "Deleted."
    sent = without_cli_additions(stack.upstream.requests[-1].body["messages"])
    [use] = [b for b in sent[1]["content"] if b["type"] == "tool_use"]
    assert (use["id"], use["name"], use["input"]) == (
        "toolu_04",
        f"{CLI_TOOL}editor__apply_patch",
        {"input": patch},
    )


# The newer fields the openai SDK's function and custom tool types carry (openai 3.57 to 3.63),
# as the Agents SDK sends them: a deferred tool behind a hosted `tool_search`, an output schema,
# the callers a tool admits.
LOOKUP_OUTPUT = {"type": "object", "properties": {"id": {"type": "string"}}}
CRM_NAMESPACE: dict[str, Any] = {
    "type": "namespace",
    "name": "crm",
    "description": "Customers.",
    "tools": [
        {
            "type": "function",
            "name": "lookup",
            "description": "Find a customer.",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            "strict": False,
            "defer_loading": True,
            "output_schema": LOOKUP_OUTPUT,
            "allowed_callers": ["direct", "programmatic"],
            "async": False,
        },
        {
            "type": "function",
            "name": "bulk_export",
            "description": "Only for programs.",
            "parameters": {"type": "object", "properties": {}},
            "allowed_callers": ["programmatic"],
        },
        {**APPLY_PATCH, "allowed_callers": ["programmatic"], "defer_loading": True},
    ],
}


def test_newer_function_tool_fields_are_accepted_and_a_deferred_tool_is_simply_offered(
    stack: Stack, oai: openai.OpenAI
) -> None:
    weather: Any = {**WEATHER, "defer_loading": True, "output_schema": LOOKUP_OUTPUT}
    weather["allowed_callers"] = ["direct"]
    tools: Any = [weather, CRM_NAMESPACE, {"type": "tool_search"}]
    call = ToolUseBlock("toolu_05", f"{CLI_TOOL}crm__lookup", {"q": "Ada"})
    stack.upstream.enqueue(BlocksReply([call]))
    response = oai.responses.create(model=MODEL, input="Find Ada.", tools=tools)
    offered = {tool["name"]: tool for tool in stack.upstream.requests[0].body["tools"]}
    ours = {name.removeprefix(CLI_TOOL) for name in offered if name.startswith(CLI_TOOL)}
    # Only the programs a tool admits alone could call it, and ccfleet runs none: not shown.
    assert ours == {"get_weather", "crm__lookup"}
    lookup = offered[f"{CLI_TOOL}crm__lookup"]
    assert lookup["description"] == "Find a customer."
    assert lookup["input_schema"] == {"type": "object", "properties": {"q": {"type": "string"}}}
    [item] = response.output
    assert item.type == "function_call"
    assert (item.namespace, item.name, item.call_id) == ("crm", "lookup", "toolu_05")
    assert json.loads(item.arguments) == {"q": "Ada"}
    assert response.tools == oai.responses.retrieve(response.id).tools
    [echoed_weather, echoed_crm, _] = [
        tool.model_dump(exclude_none=True) for tool in response.tools
    ]
    assert echoed_weather["defer_loading"] is True
    assert echoed_crm["tools"][0]["output_schema"] == LOOKUP_OUTPUT


@pytest.mark.parametrize(
    ("tool", "field"),
    [
        ({**WEATHER, "async": True}, "tools.0.function.async"),
        (
            {**CRM_NAMESPACE, "tools": [{**APPLY_PATCH, "async": True}]},
            "tools.0.namespace.tools.0.custom.async",
        ),
    ],
)
def test_an_async_tool_is_a_bad_request_naming_the_field(
    stack: Stack, oai: openai.OpenAI, tool: Any, field: str
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        oai.responses.create(model=MODEL, input="Start it.", tools=[tool])
    error = raised.value.body  # the SDK's view of the body: its `error` object
    assert isinstance(error, dict) and error["type"] == "invalid_request_error"
    message = error["message"]
    assert message.startswith(f"{field}: ") and "async" in message.removeprefix(field)
    assert stack.upstream.requests == []


def test_a_stream_passes_the_sdks_strict_checks_and_reasoning_round_trips(
    stack: Stack, oai: openai.OpenAI
) -> None:
    thinking = ThinkingBlock("Two and two make four.", signature="sig_42")
    stack.upstream.enqueue(BlocksReply([thinking, TextBlock("Four, matey.")], chunk_chars=4))
    with oai.responses.stream(
        model=MODEL,
        input="What is 2+2?",
        reasoning={"effort": "low", "summary": "auto"},
        include=["reasoning.encrypted_content"],
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert "response.reasoning_summary_text.delta" in kinds
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "Four, matey." and len(deltas) > 1
    assert final.output_text == "Four, matey."
    reasoning = final.output[0]
    assert reasoning.type == "reasoning"
    assert [part.text for part in reasoning.summary] == ["Two and two make four."]
    assert reasoning.encrypted_content
    assert oai.responses.retrieve(final.id).output_text == "Four, matey."  # stored at its end

    stack.upstream.reset()
    history: list[Any] = [
        {"role": "user", "content": "What is 2+2?"},
        *[item.model_dump(exclude_none=True) for item in final.output],
        {"role": "user", "content": "Sure?"},
    ]
    oai.responses.create(model=MODEL, input=history)
    sent = without_cli_additions(stack.upstream.requests[0].body["messages"])
    assert sent[1]["content"][0] == {
        "type": "thinking",
        "thinking": "Two and two make four.",
        "signature": "sig_42",
    }


def test_a_streamed_function_call_arrives_as_argument_deltas_and_store_false_keeps_nothing(
    stack: Stack, oai: openai.OpenAI
) -> None:
    call = ToolUseBlock("toolu_02", f"{CLI_TOOL}get_weather", {"city": "Rome"})
    stack.upstream.enqueue(BlocksReply([call], chunk_chars=4))
    with oai.responses.stream(
        model=MODEL, input="Weather in Rome?", tools=[WEATHER], store=False
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(final.id)
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert json.loads("".join(deltas)) == {"city": "Rome"}
    [call_item] = final.output
    assert call_item.type == "function_call" and call_item.name == "get_weather"
    assert json.loads(call_item.arguments) == {"city": "Rome"}


def test_an_upstream_429_is_a_rate_limit_error_in_openais_shape(
    stack: Stack, oai: openai.OpenAI
) -> None:
    stack.upstream.set_responder(lambda _r: ErrorReply(429, "rate_limit_error", "upstream says no"))
    with pytest.raises(openai.RateLimitError) as caught:
        oai.responses.create(model=MODEL, input="Hi")
    assert caught.value.response.json() == {
        "error": {
            "message": "upstream says no",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }


def test_a_mid_stream_error_ends_the_stream_with_response_failed(
    stack: Stack, auth: dict[str, str]
) -> None:
    stack.upstream.enqueue(MidStreamErrorReply("Partial answer that ", "overloaded_error"))
    body = {"model": MODEL, "input": "Hi", "stream": True}
    url = f"{stack.url}/v1/responses"
    with loopback.stream("POST", url, json=body, headers=auth, timeout=60) as response:
        assert response.status_code == 200
        data = [json.loads(line[6:]) for line in response.iter_lines() if line[:6] == "data: "]
    assert [event["sequence_number"] for event in data] == list(range(len(data)))
    last = data[-1]
    assert last["type"] == "response.failed"
    assert last["response"]["status"] == "failed"
    assert last["response"]["error"]["message"]
    assert not any(event["type"] == "response.completed" for event in data)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"input": [{"type": "message", "role": "tool", "content": "x"}]}, "input.0"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_invalid_input_is_a_bad_request_in_openais_shape_naming_the_field(
    stack: Stack, auth: dict[str, str], fields: dict[str, Any], field: str
) -> None:
    body = {"model": MODEL, "input": "Hi", **fields}
    response = loopback.post(f"{stack.url}/v1/responses", json=body, headers=auth, timeout=10)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(field)
    assert stack.upstream.requests == []


def test_a_stored_response_is_read_continued_and_deleted_by_its_own_key_only(
    stack: Stack,
    oai: openai.OpenAI,
    sdk_clients: SdkClients,
    responses_keys: ResponsesKeys,
    responses_both_paths: BothPaths,
) -> None:
    paths = responses_both_paths
    firsts: dict[Endpoint, Response] = {}

    def ask(to: Endpoint) -> Response:
        firsts[to] = _responding(input="What is 2+2?", instructions="Be brief.")(to)
        return firsts[to]

    paths.turn(ask, TextReply("Four."), follow_up=False, same=_output)
    first = firsts[paths.replayed]  # on `stack`, where the other client's key is
    assert oai.responses.retrieve(first.id).output_text == "Four."
    [item] = oai.responses.input_items.list(first.id).data
    assert item.type == "message" and item.id
    other = sdk_clients.openai_client(stack.url, key=responses_keys.other)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model=MODEL, input="And?", previous_response_id=first.id)

    def continue_(to: Endpoint) -> Response:
        previous = firsts[to].id
        return _responding(
            input="Times 3?", previous_response_id=previous, instructions="Be brief."
        )(to)

    second = paths.turn(continue_, TextReply("Twelve."), follow_up=True, same=_output)
    assert second.output_text == "Twelve."
    assert second.previous_response_id == firsts[paths.resident].id
    assert without_cli_additions(paths.resident_bodies[-1]["messages"]) == [
        {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Four."}]},
        {"role": "user", "content": [{"type": "text", "text": "Times 3?"}]},
    ]
    oai.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(first.id)


def reference(item_id: str | None) -> ItemReference:
    assert item_id
    return {"type": "item_reference", "id": item_id}


def test_item_references_name_the_keys_own_stored_items(
    stack: Stack, oai: openai.OpenAI, sdk_clients: SdkClients, responses_keys: ResponsesKeys
) -> None:
    stack.upstream.enqueue(TextReply("Four."))
    first = oai.responses.create(model=MODEL, input="What is 2+2?")
    [question] = oai.responses.input_items.list(first.id).data
    answer = first.output[0].id
    other = sdk_clients.openai_client(stack.url, key=responses_keys.other)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model=MODEL, input=[reference(answer)])

    stack.upstream.reset()
    stack.upstream.enqueue(TextReply("Twelve."))
    conversation: ResponseInputParam = [
        reference(question.id),
        reference(answer),
        {"role": "user", "content": "Times 3?"},
    ]
    assert oai.responses.create(model=MODEL, input=conversation).output_text == "Twelve."
    [sent] = stack.upstream.requests
    assert without_cli_additions(sent.body["messages"]) == [
        {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Four."}]},
        {"role": "user", "content": [{"type": "text", "text": "Times 3?"}]},
    ]


def test_a_background_response_is_polled_to_its_end_and_another_cancelled(
    stack: Stack, oai: openai.OpenAI
) -> None:
    stack.upstream.enqueue(TextReply("Done in the background."))
    queued = oai.responses.create(model=MODEL, input="Work on it.", background=True)
    assert queued.status in ("queued", "in_progress")
    wait_until(lambda: oai.responses.retrieve(queued.id).status == "completed", 60, "the job's end")
    assert oai.responses.retrieve(queued.id).output_text == "Done in the background."

    stack.upstream.enqueue(HangReply(60))
    hanging = oai.responses.create(model=MODEL, input="Take your time.", background=True)
    assert stack.upstream.wait_for_requests(2, timeout_s=30), "the CLI reached the upstream"
    assert oai.responses.cancel(hanging.id).status == "cancelled"
    wait_until(lambda: not stack.clis(), 15, "the CLI to be killed")
    assert oai.responses.retrieve(hanging.id).status == "cancelled"


def test_a_stream_is_resumed_with_last_event_id_without_gaps_or_repeats(
    stack: Stack, auth: dict[str, str]
) -> None:
    text = "One two three four five six seven."
    stack.upstream.enqueue(TextReply(text, chunk_chars=3, delay_s=0.1))
    body = {"model": MODEL, "input": "Count.", "stream": True}
    url = f"{stack.url}/v1/responses"
    first: list[dict[str, Any]] = []
    headers = {**auth, "x-ccfleet-resume-window": "30"}
    with loopback.stream("POST", url, json=body, headers=headers, timeout=60) as response:
        last_id = ""
        for line in response.iter_lines():
            if line.startswith("id: "):
                last_id = line[4:]
            elif line.startswith("data: "):
                first.append(json.loads(line[6:]))
            if sum(event["type"] == "response.output_text.delta" for event in first) >= 3:
                break
    resume = {**headers, "last-event-id": last_id}
    with loopback.stream("POST", url, json=body, headers=resume, timeout=60) as response:
        assert response.status_code == 200
        rest = [json.loads(line[6:]) for line in response.iter_lines() if line[:6] == "data: "]
    events = first + rest
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert "".join(deltas) == text
    assert events[-1]["type"] == "response.completed"
    # The response and its message keep their ids across the resume.
    assert len({e["response"]["id"] for e in events if "response" in e}) == 1
    assert len({e["item_id"] for e in events if "item_id" in e}) == 1
    assert events[-1]["response"]["output"][0]["id"] == first[2]["item"]["id"]


def test_a_background_stream_outlives_its_client_and_resumes_after_a_sequence_number(
    stack: Stack, oai: openai.OpenAI
) -> None:
    text = "One two three four five six seven."
    stack.upstream.enqueue(TextReply(text, chunk_chars=3, delay_s=0.1))
    first: list[dict[str, Any]] = []
    with oai.responses.create(model=MODEL, input="Count.", background=True, stream=True) as events:
        for event in events:
            first.append(event.model_dump(mode="json"))
            if sum(e["type"] == "response.output_text.delta" for e in first) >= 3:
                break  # the client leaves; a background response goes on without it
    response_id = first[0]["response"]["id"]
    resumed = oai.responses.retrieve(
        response_id, stream=True, starting_after=first[-1]["sequence_number"]
    )
    with resumed as events:
        rest = [event.model_dump(mode="json") for event in events]
    streamed = first + rest
    assert [e["sequence_number"] for e in streamed] == list(range(len(streamed)))
    deltas = [e["delta"] for e in streamed if e["type"] == "response.output_text.delta"]
    assert "".join(deltas) == text
    assert streamed[-1]["type"] == "response.completed"
    assert streamed[-1]["response"]["id"] == response_id
    assert oai.responses.retrieve(response_id).output_text == text


def test_a_background_stream_says_queued_at_once_and_in_progress_when_its_job_starts(
    stack: Stack, oai: openai.OpenAI
) -> None:
    stack.upstream.enqueue(HangReply(60), TextReply("Your turn came."))
    # The worker's one batch slot is taken, so the streamed response waits in the queue.
    hog = oai.responses.create(model=MODEL, input="Take your time.", background=True)
    assert stack.upstream.wait_for_requests(1, timeout_s=30), "the CLI reached the upstream"
    # The timeouts bound a stream that would send nothing until its job's first chunk.
    opening: list[dict[str, Any]] = []
    with oai.responses.create(
        model=MODEL, input="Wait.", background=True, stream=True, timeout=20
    ) as events:
        for event in events:
            opening.append(event.model_dump(mode="json"))
            if len(opening) == 2:
                break  # the client leaves while its response is queued
    response_id = opening[0]["response"]["id"]
    resumed_while_queued = oai.responses.retrieve(
        response_id, stream=True, starting_after=0, timeout=20
    )
    with resumed_while_queued as events:
        again = next(iter(events)).model_dump(mode="json")
    oai.responses.cancel(hog.id)
    with oai.responses.retrieve(response_id, stream=True, starting_after=1) as events:
        rest = [event.model_dump(mode="json") for event in events]
    assert [(e["type"], e["response"]["status"]) for e in opening] == [
        ("response.created", "queued"),
        ("response.queued", "queued"),
    ]
    assert again == opening[1]
    streamed = opening + rest
    assert [e["sequence_number"] for e in streamed] == list(range(len(streamed)))
    assert (rest[0]["type"], rest[0]["response"]["status"]) == (
        "response.in_progress",
        "in_progress",
    )
    assert rest[-1]["type"] == "response.completed"
    assert oai.responses.retrieve(response_id).output_text == "Your turn came."


def test_cancelling_a_waiting_background_response_ends_its_concurrency_lease(
    stack: Stack, sdk_clients: SdkClients, responses_keys: ResponsesKeys
) -> None:
    secret = RESPONSES_AUTH_ENV["CCFLEET_AUTH_SECRET"]
    one_at_a_time = asyncio.run(
        client_keys.create_key(stack.redis.url, secret, "one-at-a-time", concurrency=1)
    )
    hog = sdk_clients.openai_client(stack.url, key=responses_keys.mine)
    limited = sdk_clients.openai_client(stack.url, key=one_at_a_time)
    stack.upstream.enqueue(HangReply(60), TextReply("Admitted."))
    # The worker's one batch slot (the other is kept for interactive work) is taken...
    running = hog.responses.create(model=MODEL, input="Take your time.", background=True)
    assert stack.upstream.wait_for_requests(1, timeout_s=30), "the CLI reached the upstream"
    # ...so this one waits, holding its key's only concurrency lease, until it is cancelled.
    waiting = limited.responses.create(model=MODEL, input="Wait.", background=True)
    assert limited.responses.retrieve(waiting.id).status == "queued"
    assert limited.responses.cancel(waiting.id).status == "cancelled"
    assert limited.responses.create(model=MODEL, input="Again.").output_text == "Admitted."
    hog.responses.cancel(running.id)
    wait_until(lambda: not stack.clis(), 15, "the CLI to be killed")


def ttft_samples(stack: Stack) -> int:
    """How many requests of the last minutes the dashboard's figures have a TTFT for."""

    async def read() -> int:
        async with Redis.from_url(stack.redis.url) as redis:
            stats = await read_request_stats(redis, now_s=time.time())
        return max(window.ttft_samples for window in stats)

    return asyncio.run(read())


def settled_ttft_samples(stack: Stack) -> int:
    """`ttft_samples` once the front end has written what the module's earlier requests added:
    its writer pauses PAUSE_S after each write, gathering the outcomes that end meanwhile."""
    previous, current = -1, ttft_samples(stack)
    while current != previous:
        time.sleep(PAUSE_S + 0.5)
        previous, current = current, ttft_samples(stack)
    return current


def test_a_response_counts_in_the_dashboards_figures(stack: Stack, oai: openai.OpenAI) -> None:
    before = settled_ttft_samples(stack)
    oai.responses.create(model=MODEL, input="Hi")
    wait_until(lambda: ttft_samples(stack) == before + 1, 10, "the request to be recorded")
