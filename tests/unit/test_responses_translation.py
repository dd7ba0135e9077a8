"""Responses API <-> Anthropic Messages translation, as pure functions."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from api.responses.events import ResponseTranslator, response_object
from api.responses.request import ResponsesRequest
from api.responses.translation import ToolNames, encode_thinking, to_messages_request
from shared.errors import InvalidRequest

MODEL = "claude-sonnet-5-5"


def responses(**fields: Any) -> ResponsesRequest:
    return ResponsesRequest.model_validate({"model": MODEL, "input": "Hi", **fields})


def anthropic(**fields: Any) -> dict[str, Any]:
    return to_messages_request(responses(**fields)).model_dump(mode="json", exclude_unset=True)


def test_a_string_input_is_one_user_turn_with_the_default_output_limit() -> None:
    sent = anthropic()
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    assert sent["max_tokens"] == 32000
    assert "system" not in sent and "tools" not in sent


def test_namespace_tools_are_flattened_and_hosted_ones_left_out() -> None:
    namespace = {
        "type": "namespace",
        "name": "crm",
        "description": "Customers.",
        "tools": [{"type": "function", "name": "find", "parameters": {"type": "object"}}],
    }
    tools = [namespace, {"type": "web_search"}, {"type": "image_generation", "quality": "low"}]
    sent = anthropic(tools=tools, tool_choice="required", parallel_tool_calls=False)
    assert [tool["name"] for tool in sent["tools"]] == ["crm__find"]
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert ToolNames.of(responses(tools=tools)).client_name("crm__find") == ("find", "crm")
    assert ToolNames.of(responses(tools=tools)).client_name("other") == ("other", None)


def test_only_tools_the_model_may_call_itself_are_shown_deferred_ones_at_once() -> None:
    def function(name: str, **fields: Any) -> dict[str, Any]:
        return {"type": "function", "name": name, **fields}

    namespace = {
        "type": "namespace",
        "name": "crm",
        "description": "Customers.",
        "tools": [
            function("find", defer_loading=True, allowed_callers=["programmatic", "direct"]),
            function("export", allowed_callers=["programmatic"]),
            {"type": "custom", "name": "note", "allowed_callers": []},
        ],
    }
    tools = [function("plain", output_schema={"type": "object"}, **{"async": False}), namespace]
    sent = anthropic(tools=tools)
    assert [tool["name"] for tool in sent["tools"]] == ["plain", "crm__find"]
    assert sent["tools"][0] == {
        "name": "plain",
        "input_schema": {"type": "object", "properties": {}},
    }


def test_an_async_tool_is_refused_naming_its_field() -> None:
    with pytest.raises(ValidationError) as raised:
        responses(tools=[{"type": "custom", "name": "note", "async": True}])
    [problem] = raised.value.errors()
    assert problem["loc"] == ("tools", 0, "custom", "async")
    assert "async tool calls are not supported" in problem["msg"]


def test_a_namespaced_call_in_the_history_goes_back_under_its_flat_name() -> None:
    call = {
        "type": "function_call",
        "call_id": "c1",
        "name": "find",
        "namespace": "crm",
        "arguments": '{"q": "x"}',
        "id": "fc_1",
        "status": "completed",
    }
    output = {"type": "function_call_output", "call_id": "c1", "output": "found"}
    sent = anthropic(input=[{"role": "user", "content": "Find x."}, call, output])
    assert sent["messages"][1]["content"] == [
        {"type": "tool_use", "id": "c1", "name": "crm__find", "input": {"q": "x"}}
    ]
    assert sent["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "c1", "content": "found"}
    ]


@pytest.mark.parametrize(
    ("effort", "thinking"),
    [
        ("none", {"type": "disabled"}),
        ("low", {"type": "enabled", "budget_tokens": 2048}),
        ("high", {"type": "enabled", "budget_tokens": 16384}),
    ],
)
def test_reasoning_effort_becomes_a_thinking_budget(effort: str, thinking: dict[str, Any]) -> None:
    assert anthropic(reasoning={"effort": effort})["thinking"] == thinking


def test_a_json_schema_format_is_asked_for_in_the_system_prompt() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    text = {"format": {"type": "json_schema", "name": "count", "schema": schema}}
    sent = anthropic(instructions="Count.", text=text)
    assert sent["system"].startswith("Count.\n\nAnswer with one JSON value")
    assert '"properties":{"n":{"type":"integer"}}' in sent["system"]


def test_a_thinking_block_round_trips_through_encrypted_content() -> None:
    block = {"type": "thinking", "thinking": "Hmm.", "signature": "sig"}
    reasoning = {"type": "reasoning", "summary": [], "encrypted_content": encode_thinking(block)}
    sent = anthropic(
        input=[{"role": "user", "content": "Q"}, reasoning, {"role": "user", "content": "R"}]
    )
    assert sent["messages"][1] == {"role": "assistant", "content": [block]}


def test_encrypted_content_ccfleet_did_not_write_is_dropped_and_damaged_content_refused() -> None:
    foreign = {"type": "reasoning", "summary": [], "encrypted_content": "gAAAA-openai"}
    assert len(anthropic(input=[foreign, {"role": "user", "content": "Q"}])["messages"]) == 1
    damaged = {"type": "reasoning", "summary": [], "encrypted_content": "ccfleet.!!"}
    with pytest.raises(InvalidRequest, match="encrypted_content"):
        anthropic(input=[damaged, {"role": "user", "content": "Q"}])


def test_an_unknown_field_of_an_input_item_is_refused() -> None:
    with pytest.raises(ValidationError, match="surprise"):
        responses(input=[{"role": "user", "content": "Q", "surprise": 1}])


def test_a_response_cut_by_the_output_limit_is_incomplete() -> None:
    request = responses()
    translator = ResponseTranslator(
        response_object(request, "resp_1"), ToolNames.of(request), encrypted_reasoning=False
    )
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 5}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ab"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens"},
            "usage": {"output_tokens": 9},
        },
        {"type": "message_stop"},
    ]
    sent = [event for chunk in events for event in translator.feed(chunk)]
    assert sent[-1]["type"] == "response.incomplete"
    assert translator.response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert translator.response["usage"]["total_tokens"] == 14
    assert translator.response["output"][0]["content"][0]["text"] == "ab"


CUSTOM_TOOL = {"type": "custom", "name": "apply_patch", "format": {"type": "text"}}


def custom_call(arguments: str) -> dict[str, Any]:
    """The custom tool's call as the translator sends it, from the model's arguments."""
    request = responses(tools=[CUSTOM_TOOL])
    translator = ResponseTranslator(
        response_object(request, "resp_1"), ToolNames.of(request), encrypted_reasoning=False
    )
    use = {"type": "tool_use", "id": "toolu_1", "name": "apply_patch", "input": {}}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"usage": {}}},
        {"type": "content_block_start", "index": 0, "content_block": use},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": arguments},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "message_stop"},
    ]
    for event in events:
        translator.feed(event)
    [item] = translator.response["output"]
    assert item["type"] == "custom_tool_call" and item["call_id"] == "toolu_1"
    return dict(item)


def test_a_custom_tools_call_carries_the_string_the_model_gave_as_its_input() -> None:
    assert custom_call('{"input": "*** Begin Patch"}')["input"] == "*** Begin Patch"
    # Anything but {"input": "..."} goes to the client's tool as the model wrote it.
    assert custom_call('{"patch": 1}')["input"] == '{"patch": 1}'


def test_a_custom_tool_call_in_the_history_is_a_call_with_one_input_string() -> None:
    call = {"type": "custom_tool_call", "call_id": "c1", "name": "apply_patch", "input": "p"}
    output = {"type": "custom_tool_call_output", "call_id": "c1", "output": "ok"}
    sent = anthropic(tools=[CUSTOM_TOOL], input=[{"role": "user", "content": "Go."}, call, output])
    assert sent["messages"][1]["content"] == [
        {"type": "tool_use", "id": "c1", "name": "apply_patch", "input": {"input": "p"}}
    ]
    assert sent["messages"][2]["content"][0]["tool_use_id"] == "c1"
    [tool] = sent["tools"]
    assert tool["input_schema"]["required"] == ["input"]
