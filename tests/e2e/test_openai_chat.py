"""POST /v1/chat/completions with the official openai SDK, through the real stack and CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import httpx
import openai
import pytest
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionAssistantMessageParam,
    ChatCompletionContentPartParam,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageParam,
    ChatCompletionUserMessageParam,
)

from tests import loopback
from tests.conftest import Stack, StackFactory, module_stack
from tests.e2e.conftest import MODEL, BothPaths, Endpoint, as_blocks, without_cli_additions
from tests.e2e.test_messages import _png_base64
from tests.fakes.upstream import (
    BlocksReply,
    ErrorReply,
    FakeUpstream,
    HangReply,
    MidStreamErrorReply,
    Reply,
    TextBlock,
    TextReply,
    ThinkingBlock,
    ToolUseBlock,
)
from tests.processes import wait_until
from tests.sdk import SdkClients

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]
MODEL_TOOL_NAME = (
    "mcp__client__get_weather"  # the name the model sees (worker/tools/client_tools.py)
)
WEATHER_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def answering_stack(
    tmp_path_factory: pytest.TempPathFactory, session_upstream: FakeUpstream, claude_bin: str
) -> Iterator[Stack]:
    """One front end and one worker for the module's tests whose requests are answered or
    refused at the door: started once, not once a test (each job's CLI ends with its job)."""
    with module_stack(tmp_path_factory, session_upstream, claude_bin, workers=1) as stack:
        yield stack


@pytest.fixture
def stack(answering_stack: Stack, upstream: FakeUpstream) -> Stack:
    """This module's `stack`: the shared `answering_stack`, its upstream reset (`upstream`)."""
    return answering_stack


@pytest.fixture
def own_stack(make_stack: StackFactory) -> Stack:
    """A stack of the test's own, for a test whose upstream fails or whose client goes away:
    what such a failure leaves (an account's state, a killed CLI) stays with it."""
    return make_stack()


@pytest.fixture
def oai(stack: Stack, sdk_clients: SdkClients) -> openai.OpenAI:
    return sdk_clients.openai_client(stack.url)


@pytest.fixture
def own_oai(own_stack: Stack, sdk_clients: SdkClients) -> openai.OpenAI:
    return sdk_clients.openai_client(own_stack.url)


def _completion(paths: BothPaths, reply: Reply, follow_up: bool, **kwargs: Any) -> ChatCompletion:
    """One turn of a chat conversation through both paths (`BothPaths.turn`)."""
    kwargs.setdefault("model", MODEL)

    def send(to: Endpoint) -> ChatCompletion:
        with openai.OpenAI(base_url=f"{to.url}/v1", api_key=to.key, max_retries=0) as oai:
            completion: ChatCompletion = oai.chat.completions.create(**kwargs)
            return completion

    return paths.turn(send, reply, follow_up=follow_up, same=lambda c: c.choices)


def test_a_non_streaming_completion_carries_the_text_finish_reason_and_usage(
    stack: Stack, oai: openai.OpenAI
) -> None:
    stack.upstream.enqueue(
        BlocksReply(
            [ThinkingBlock("Hidden."), TextBlock("Hello there, world.")],
            input_tokens=21,
            output_tokens=7,
        )
    )
    raw = oai.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO)
    completion = raw.parse()
    assert raw.headers["x-request-id"].startswith("req_")
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == MODEL
    [choice] = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello there, world."
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 7
    assert completion.usage.prompt_tokens >= 21  # plus what the CLI's cache reports
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 7
    assert stack.upstream.requests[0].body["model"] == MODEL


def test_a_stream_starts_with_the_role_and_ends_with_finish_reason_and_usage(
    stack: Stack, oai: openai.OpenAI
) -> None:
    stack.upstream.enqueue(TextReply("One two three four five six.", chunk_chars=5))
    stream = oai.chat.completions.create(
        model=MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    with_choices = [chunk for chunk in chunks if chunk.choices]
    assert with_choices[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in with_choices)
    assert text == "One two three four five six."
    assert [c.choices[0].finish_reason for c in with_choices][-1] == "stop"
    assert all(c.choices[0].finish_reason is None for c in with_choices[:-1])
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_the_raw_stream_is_unnamed_data_lines_ending_in_done(stack: Stack) -> None:
    stack.upstream.enqueue(TextReply("slow answer", chunk_chars=4, delay_s=0.6))
    body = {"model": MODEL, "messages": HELLO, "stream": True}
    url = f"{stack.url}/v1/chat/completions"
    with loopback.stream("POST", url, json=body, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert not any(line.startswith("event:") for line in lines)
    assert any(line.startswith(":") for line in lines), "pings are comments"
    data = [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    assert all(json.loads(d)["object"] == "chat.completion.chunk" for d in data[:-1])


@pytest.mark.xdist_group("both_paths")
def test_the_system_prompt_and_history_reach_the_upstream_resident_or_replayed(
    both_paths: BothPaths,
) -> None:
    history: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4."},
        {"role": "user", "content": [{"type": "text", "text": "And times 3?"}]},
        {"role": "assistant", "content": "12."},
        {"role": "user", "content": "Thanks! Now in words."},
    ]
    prompts: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "You are a pirate."},
        {"role": "developer", "content": "Be brief."},
    ]
    opus = {"model": "claude-opus-5-5", "max_completion_tokens": 50}
    # The fourth message is the model's answer to the first three.
    _completion(both_paths, TextReply("12."), False, messages=[*prompts, *history[:3]], **opus)
    _completion(both_paths, TextReply("Twelve."), True, messages=[*prompts, *history], **opus)
    sent = both_paths.resident_bodies[-1]
    assert sent["model"] == "claude-opus-5-5"
    assert sent["system"][-1]["text"] == "You are a pirate.\n\nBe brief."
    assert as_blocks(without_cli_additions(sent["messages"])) == as_blocks(history)


def test_an_image_data_url_arrives_as_an_image_block(stack: Stack, oai: openai.OpenAI) -> None:
    png = _png_base64()
    content: list[ChatCompletionContentPartParam] = [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
        {"type": "text", "text": "What is this?"},
    ]
    oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}])
    sent = stack.upstream.requests[0].body["messages"][0]["content"]
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}}
    assert image in sent


def test_an_upstream_429_is_a_rate_limit_error_in_openais_shape(
    own_stack: Stack, own_oai: openai.OpenAI
) -> None:
    own_stack.upstream.set_responder(
        lambda _r: ErrorReply(429, "rate_limit_error", "upstream says no")
    )
    with pytest.raises(openai.RateLimitError) as caught:
        own_oai.chat.completions.create(model=MODEL, messages=HELLO)
    error = caught.value
    assert error.status_code == 429
    assert error.response.json() == {
        "error": {
            "message": "upstream says no",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert error.code == "rate_limit_exceeded"
    assert error.request_id is not None and error.request_id.startswith("req_")


def test_a_streaming_request_refused_upstream_is_a_plain_http_error(
    own_stack: Stack, own_oai: openai.OpenAI
) -> None:
    own_stack.upstream.set_responder(lambda _r: ErrorReply(529, "overloaded_error", "Overloaded"))
    with pytest.raises(openai.InternalServerError) as caught:
        own_oai.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
    assert caught.value.status_code == 503
    assert caught.value.code == "overloaded"


def test_a_mid_stream_error_makes_the_sdk_raise_instead_of_finishing(
    own_stack: Stack, own_oai: openai.OpenAI
) -> None:
    own_stack.upstream.enqueue(MidStreamErrorReply("Partial answer that ", "overloaded_error"))
    finishes = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in own_oai.chat.completions.create(model=MODEL, messages=HELLO, stream=True):
            finishes += [choice.finish_reason for choice in chunk.choices]
    assert caught.value.type == "server_error"
    assert finishes and not any(finishes)


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "non-streaming"])
def test_a_client_going_away_kills_the_cli(own_stack: Stack, stream: bool) -> None:
    own_stack.upstream.enqueue(HangReply(60))
    body = {"model": MODEL, "messages": HELLO, "stream": stream}
    url = f"{own_stack.url}/v1/chat/completions"
    if stream:
        with loopback.stream("POST", url, json=body, timeout=30) as response:
            next(line for line in response.iter_lines() if line.startswith("data: "))
    else:
        with pytest.raises(httpx.ReadTimeout):
            loopback.post(url, json=body, timeout=httpx.Timeout(3.0))
    assert own_stack.upstream.requests, "the CLI had reached the upstream"
    wait_until(
        lambda: not own_stack.clis() and own_stack.upstream.disconnects >= 1,
        10,
        "the CLI to be killed",
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"n": 2}, "n"),
        ({"response_format": {"type": "json_object"}}, "response_format.type"),
        ({"messages": [{"role": "user"}]}, "messages.0"),
        ({"messages": [*HELLO, {"role": "assistant", "content": "Hi"}]}, "messages"),
    ],
)
def test_invalid_input_is_a_bad_request_naming_the_field(
    stack: Stack, oai: openai.OpenAI, fields: dict[str, object], field: str
) -> None:
    body: dict[str, Any] = {"model": MODEL, "messages": HELLO, **fields}  # JSON, invalid on purpose
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(**body)
    error = caught.value.body  # the SDK's view of the body: its `error` object
    assert isinstance(error, dict)
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(field)
    assert stack.upstream.requests == []


def test_an_unknown_path_under_chat_is_a_404_in_openais_shape(stack: Stack) -> None:
    response = loopback.get(f"{stack.url}/v1/chat/nothing-here", timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


@pytest.mark.xdist_group("both_paths")
def test_a_tool_call_round_trip_resident_or_replayed(both_paths: BothPaths) -> None:
    call = ToolUseBlock("toolu_01", MODEL_TOOL_NAME, {"city": "Paris"})
    question: ChatCompletionUserMessageParam = {"role": "user", "content": "Weather in Paris?"}
    checking = BlocksReply([TextBlock("Let me check."), call])
    completion = _completion(both_paths, checking, False, messages=[question], tools=[WEATHER_TOOL])
    [choice] = completion.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    [tool_call] = choice.message.tool_calls or []
    assert tool_call.id == "toolu_01" and tool_call.type == "function"
    assert tool_call.function.name == "get_weather"
    assert json.loads(tool_call.function.arguments) == {"city": "Paris"}
    assert both_paths.resident_bodies[0]["tools"][-1]["name"].endswith("get_weather")

    follow_up = _completion(
        both_paths,
        TextReply("Sunny, 18C."),
        True,
        tools=[WEATHER_TOOL],
        messages=[
            question,
            # The reply as clients send it back: the SDK's model, dumped.
            cast(ChatCompletionAssistantMessageParam, choice.message.model_dump(exclude_none=True)),
            {"role": "tool", "tool_call_id": "toolu_01", "content": "18C and sunny"},
        ],
    )
    assert follow_up.choices[0].message.content == "Sunny, 18C."
    sent = without_cli_additions(both_paths.resident_bodies[-1]["messages"])
    results = [b for b in sent[-1]["content"] if b["type"] == "tool_result"]
    assert [r["tool_use_id"] for r in results] == ["toolu_01"]
    assert "18C and sunny" in json.dumps(results[0]["content"])


def test_a_streamed_tool_call_arrives_as_tool_call_deltas(stack: Stack, oai: openai.OpenAI) -> None:
    call = ToolUseBlock("toolu_02", MODEL_TOOL_NAME, {"city": "Rome"})
    stack.upstream.enqueue(BlocksReply([call], chunk_chars=4))
    stream = oai.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Rome?"}],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    deltas = [d for chunk in stream for c in chunk.choices for d in c.delta.tool_calls or []]
    assert deltas[0].id == "toolu_02" and deltas[0].function is not None
    assert deltas[0].function.name == "get_weather"
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert json.loads(arguments) == {"city": "Rome"}
    assert {d.index for d in deltas} == {0}
