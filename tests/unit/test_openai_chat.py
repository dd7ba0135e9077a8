"""OpenAI Chat Completions <-> Anthropic Messages translation, as pure functions."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.errors import error_event, error_payload, validation_message
from api.openai.chat_reply import ChunkTranslator, to_chat_completion
from api.openai.chat_request import ChatCompletionRequest, to_messages_request
from shared.errors import (
    AuthenticationFailed,
    CliFailed,
    FleetError,
    InvalidRequest,
    NotFound,
    Overloaded,
    RateLimited,
)

PNG_DATA = "iVBORw0KGgo="
HELLO = [{"role": "user", "content": "Hello"}]


def chat(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "gpt-4o", "messages": HELLO, **fields})


def anthropic(**fields: Any) -> dict[str, Any]:
    return to_messages_request(chat(**fields)).model_dump(mode="json", exclude_unset=True)


# -- request ------------------------------------------------------------------------------


def test_a_minimal_request_gets_the_default_max_tokens_and_keeps_the_model_name() -> None:
    assert anthropic() == {"model": "gpt-4o", "messages": HELLO, "max_tokens": 4096}


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    assert anthropic(max_tokens=10)["max_tokens"] == 10
    assert anthropic(max_tokens=10, max_completion_tokens=20)["max_tokens"] == 20


def test_system_and_developer_messages_join_into_the_system_prompt_in_order() -> None:
    messages = [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "Hi"},
        {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
    ]
    sent = anthropic(messages=messages)
    assert sent["system"] == "You are a pirate.\n\nBe brief."
    assert sent["messages"] == [{"role": "user", "content": "Hi"}]


def test_sampling_stop_and_user_are_carried_over() -> None:
    sent = anthropic(temperature=1.7, top_p=0.5, stop="END", user="u-1", stream=True)
    assert sent["temperature"] == 1.0  # capped at Anthropic's maximum
    assert sent["top_p"] == 0.5
    assert sent["stop_sequences"] == ["END"]
    assert sent["metadata"] == {"user_id": "u-1"}
    assert sent["stream"] is True
    assert anthropic(stop=["a", "b"])["stop_sequences"] == ["a", "b"]


def test_accepted_but_unused_parameters_are_not_passed_on() -> None:
    sent = anthropic(
        n=1,
        seed=7,
        frequency_penalty=0.5,
        presence_penalty=-0.5,
        metadata={"k": "v"},
        response_format={"type": "text"},
        stream_options={"include_usage": True},
    )
    assert set(sent) == {"model", "messages", "max_tokens"}


def test_images_from_data_urls_and_web_urls() -> None:
    content = [
        {"type": "text", "text": "What are these?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_DATA}"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg", "detail": "low"}},
    ]
    sent = anthropic(messages=[{"role": "user", "content": content}])
    assert sent["messages"][0]["content"] == [
        {"type": "text", "text": "What are these?"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": PNG_DATA},
        },
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
    ]


@pytest.mark.parametrize(
    "url", ["data:image/tiff;base64,AAAA", "data:image/png,rawbytes", "ftp://x.test/a.png"]
)
def test_an_unusable_image_url_is_an_invalid_request_naming_the_field(url: str) -> None:
    content = [{"type": "image_url", "image_url": {"url": url}}]
    with pytest.raises(InvalidRequest) as caught:
        anthropic(messages=[{"role": "user", "content": content}])
    assert caught.value.message.startswith("messages.0.content.0.image_url.url: ")


def test_tool_calls_and_tool_results_become_tool_use_and_tool_result_blocks() -> None:
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                _call("call_1", "weather", '{"city": "Paris"}'),
                _call("call_2", "weather", '{"city": "Rome"}'),
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "24C"}]},
        {"role": "user", "content": "Thanks"},
    ]
    sent = anthropic(messages=messages)["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Rome"}},
        ],
    }
    assert sent[2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
            {
                "type": "tool_result",
                "tool_use_id": "call_2",
                "content": [{"type": "text", "text": "24C"}],
            },
        ],
    }
    assert sent[3] == {"role": "user", "content": "Thanks"}


def test_an_assistant_message_with_only_tool_calls_has_no_text_block() -> None:
    messages = [
        *HELLO,
        {"role": "assistant", "content": None, "tool_calls": [_call("c", "now", "")]},
        {"role": "tool", "tool_call_id": "c", "content": "noon"},
    ]
    sent = anthropic(messages=messages)["messages"]
    assert sent[1]["content"] == [{"type": "tool_use", "id": "c", "name": "now", "input": {}}]


def test_tool_call_arguments_must_be_a_json_object() -> None:
    messages = [
        *HELLO,
        {"role": "assistant", "tool_calls": [_call("c", "f", "[1, 2]")]},
        {"role": "tool", "tool_call_id": "c", "content": "x"},
    ]
    with pytest.raises(InvalidRequest) as caught:
        anthropic(messages=messages)
    assert caught.value.message.startswith("messages.1.tool_calls.0.function.arguments: ")


def test_tools_and_each_tool_choice() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        },
        {"type": "function", "function": {"name": "now"}},
    ]
    sent = anthropic(tools=tools)
    assert sent["tools"] == [
        {
            "name": "weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in sent
    named = {"type": "function", "function": {"name": "now"}}
    assert anthropic(tools=tools, tool_choice=named)["tool_choice"] == {
        "type": "tool",
        "name": "now",
    }
    assert anthropic(tools=tools, tool_choice="required")["tool_choice"] == {"type": "any"}
    assert anthropic(tools=tools, tool_choice="none")["tool_choice"] == {"type": "none"}
    assert anthropic(tools=tools, tool_choice="auto", parallel_tool_calls=False)["tool_choice"] == {
        "type": "auto",
        "disable_parallel_tool_use": True,
    }


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"n": 2}, "n"),
        ({"response_format": {"type": "json_object"}}, "response_format.type"),
        ({"temperature": 2.5}, "temperature"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "function", "content": "x", "name": "f"}]}, "messages.0.role"),
        ({"messages": [{"role": "user"}]}, "messages.0"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages.0.content",
        ),
        ({"logit_bias": {"1": 2}}, "logit_bias"),
    ],
)
def test_invalid_requests_are_told_the_field(fields: dict[str, Any], field: str) -> None:
    body = {"model": "gpt-4o", "messages": HELLO, **fields}
    with pytest.raises(ValidationError) as caught:
        ChatCompletionRequest.model_validate(body)
    problems = [{**p, "loc": ("body", *p["loc"])} for p in caught.value.errors()]
    assert validation_message(RequestValidationError(problems, body=body)).startswith(field)


# -- reply --------------------------------------------------------------------------------


def test_a_whole_message_becomes_a_chat_completion() -> None:
    message = {
        "id": "msg_1",
        "model": "claude-sonnet-5-5",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "Hello "},
            {"type": "text", "text": "there."},
        ],
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 10,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 5,
            "output_tokens": 7,
        },
    }
    completion = to_chat_completion(message, completion_id="chatcmpl-1", created=1700000000)
    assert completion == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "claude-sonnet-5-5",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello there.", "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 115,
            "completion_tokens": 7,
            "total_tokens": 122,
            "prompt_tokens_details": {"cached_tokens": 100},
        },
    }


def test_tool_use_becomes_tool_calls_with_json_arguments() -> None:
    message = {
        "model": "m",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    choice = to_chat_completion(message, completion_id="c", created=0)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
    ]


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), (None, "stop")],
)
def test_stop_reasons_map_to_finish_reasons(stop_reason: str | None, finish: str) -> None:
    message: dict[str, Any] = {"model": "m", "content": [], "stop_reason": stop_reason, "usage": {}}
    choice = to_chat_completion(message, completion_id="c", created=0)["choices"][0]
    assert choice["finish_reason"] == finish
    assert choice["message"]["content"] == ""


def test_a_stream_translates_to_role_content_tool_calls_finish_and_usage() -> None:
    translator = ChunkTranslator(completion_id="c", created=1, model="asked", include_usage=True)
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 9}}},
        {"type": "ping"},
        _block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        _delta(0, {"type": "thinking_delta", "thinking": "secret"}),
        {"type": "content_block_stop", "index": 0},
        _block_start(1, {"type": "text", "text": ""}),
        _delta(1, {"type": "text_delta", "text": "Hi"}),
        _block_start(2, {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}),
        _delta(2, {"type": "input_json_delta", "partial_json": '{"a"'}),
        _delta(2, {"type": "input_json_delta", "partial_json": ":1}"}),
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 4, "input_tokens": None},
        },
        {"type": "message_stop"},
    ]
    chunks = [chunk for event in events for chunk in translator.feed(event)]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "c" for c in chunks)
    assert all(c["model"] == "m" for c in chunks)
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "Hi"},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "f", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * 5 + ["tool_calls"]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 9
    assert chunks[-1]["usage"]["completion_tokens"] == 4


def test_a_stream_without_include_usage_has_no_usage_and_no_finish_before_message_stop() -> None:
    translator = ChunkTranslator(completion_id="c", created=1, model="m", include_usage=False)
    start = translator.feed({"type": "message_start", "message": {}})
    held = translator.feed({"type": "message_delta", "delta": {"stop_reason": "max_tokens"}})
    last = translator.feed({"type": "message_stop"})
    assert "usage" not in start[0]
    assert held == []
    assert [c["choices"][0]["finish_reason"] for c in last] == ["length"]


# -- errors -------------------------------------------------------------------------------

CHAT_PATH = "/v1/chat/completions"


@pytest.mark.parametrize(
    ("error", "status", "error_type", "code"),
    [
        (InvalidRequest("bad"), 400, "invalid_request_error", None),
        (AuthenticationFailed("bad"), 401, "authentication_error", "invalid_api_key"),
        (NotFound("bad"), 404, "not_found_error", None),
        (RateLimited("bad"), 429, "requests", "rate_limit_exceeded"),
        (Overloaded("bad"), 503, "server_error", "overloaded"),
        (CliFailed("bad"), 500, "server_error", None),
        (FleetError("bad"), 500, "server_error", None),
    ],
)
def test_errors_on_the_chat_path_have_openais_shape(
    error: FleetError, status: int, error_type: str, code: str | None
) -> None:
    assert error_payload(error, CHAT_PATH) == (
        status,
        {"error": {"message": "bad", "type": error_type, "param": None, "code": code}},
    )
    assert error_payload(error, "/v1/messages")[1]["type"] == "error"


def test_a_stream_error_on_the_chat_path_is_an_unnamed_data_line() -> None:
    event = error_event(Overloaded("busy"), CHAT_PATH)
    assert event.event is None
    assert orjson.loads(str(event.data))["error"]["message"] == "busy"
    assert error_event(Overloaded("busy"), "/v1/messages").event == "error"


def _call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}
