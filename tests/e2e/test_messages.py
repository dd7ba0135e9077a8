"""The Messages API through a real front end and a real worker running the real CLI."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator

import anthropic
import orjson
import pytest
from anthropic.types import ImageBlockParam, Message, MessageParam

from tests import loopback
from tests.conftest import Stack, module_stack
from tests.e2e.conftest import MODEL, BothPaths, Endpoint, as_blocks, without_cli_additions
from tests.fakes.upstream import (
    BlocksReply,
    FakeUpstream,
    RedactedThinkingBlock,
    TextBlock,
    TextReply,
    ThinkingBlock,
)
from tests.sdk import text_of

HELLO: list[MessageParam] = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def answering_stack(
    tmp_path_factory: pytest.TempPathFactory, session_upstream: FakeUpstream, claude_bin: str
) -> Iterator[Stack]:
    """One front end and one worker for the module's answered requests: started once, not once
    a test (each job's CLI ends with its job)."""
    with module_stack(tmp_path_factory, session_upstream, claude_bin, workers=1) as stack:
        yield stack


@pytest.fixture
def stack(answering_stack: Stack, upstream: FakeUpstream) -> Stack:
    """This module's `stack` (and so `client`'s): the shared `answering_stack`, its upstream
    reset (`upstream`)."""
    return answering_stack


def test_a_non_streaming_reply_is_the_upstream_message(
    stack: Stack, client: anthropic.Anthropic
) -> None:
    stack.upstream.enqueue(TextReply("Hello there, world.", input_tokens=21, output_tokens=7))
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=HELLO)
    message = raw.parse()
    assert raw.headers["request-id"].startswith("req_")
    assert message.type == "message" and message.role == "assistant"
    assert message.model == MODEL
    assert [block.type for block in message.content] == ["text"]
    assert text_of(message) == "Hello there, world."
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 21
    assert message.usage.output_tokens == 7
    assert message.id.startswith("msg_fake")


def test_a_stream_has_the_api_event_sequence_and_real_usage(
    stack: Stack, client: anthropic.Anthropic
) -> None:
    stack.upstream.enqueue(TextReply("One two three four five six.", chunk_chars=5))
    with client.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
        kinds = [event.type for event in stream if event.type != "text"]
        final = stream.get_final_message()
    deltas = kinds.count("content_block_delta")
    assert kinds == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert deltas == 6
    assert text_of(final) == "One two three four five six."
    assert final.usage.output_tokens > 0 and final.usage.input_tokens == 12


def test_the_raw_stream_has_only_named_events_and_pings_while_waiting(stack: Stack) -> None:
    stack.upstream.enqueue(TextReply("slow answer", chunk_chars=4, delay_s=0.8))
    body = {"model": MODEL, "max_tokens": 50, "messages": HELLO, "stream": True}
    with loopback.stream("POST", f"{stack.url}/v1/messages", json=body, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["request-id"].startswith("req_")
        frames = _sse_frames(response.iter_text())
    names = [name for name, _ in frames]
    assert all(name for name in names), "every frame is a named event"
    assert "ping" in names
    assert all(orjson.loads(data)["type"] == name for name, data in frames)
    assert names[0] == "message_start" and names[-1] == "message_stop"


async def test_the_async_client_streams_and_gathers(
    stack: Stack, async_client: anthropic.AsyncAnthropic
) -> None:
    stack.upstream.enqueue(TextReply("async stream"), TextReply("async whole"))
    async with async_client.messages.stream(model=MODEL, max_tokens=50, messages=HELLO) as stream:
        text = "".join([chunk async for chunk in stream.text_stream])
    message = await async_client.messages.create(model=MODEL, max_tokens=50, messages=HELLO)
    assert text == "async stream"
    assert text_of(message) == "async whole"


def test_the_system_prompt_and_model_reach_the_upstream(
    stack: Stack, client: anthropic.Anthropic
) -> None:
    client.messages.create(
        model="claude-opus-5-5",
        max_tokens=50,
        system=[
            {"type": "text", "text": "You are a pirate."},
            {"type": "text", "text": "Be brief."},
        ],
        messages=HELLO,
    )
    sent = stack.upstream.requests[-1].body
    assert sent["model"] == "claude-opus-5-5"
    assert sent["system"][-1]["text"] == "You are a pirate.\n\nBe brief."


@pytest.mark.xdist_group("both_paths")
def test_a_five_turn_conversation_reaches_the_model_as_five_exact_messages_resident_or_replayed(
    both_paths: BothPaths,
) -> None:
    conversation: list[MessageParam] = [
        {"role": "user", "content": "What is 2+2?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Simple sum.", "signature": "sig_abc"},
                {"type": "text", "text": "4."},
            ],
        },
        {"role": "user", "content": [{"type": "text", "text": "And times 3?"}]},
        {"role": "assistant", "content": "12."},
        {"role": "user", "content": "Thanks! Now in words."},
    ]

    def asking(messages: list[MessageParam]) -> Callable[[Endpoint], Message]:
        def send(to: Endpoint) -> Message:
            with anthropic.Anthropic(base_url=to.url, api_key=to.key, max_retries=0) as client:
                return client.messages.create(model=MODEL, max_tokens=50, messages=messages)

        return send

    def same(message: Message) -> object:
        return message.content

    # The fourth message is the model's answer to the first three, sent back as a string.
    both_paths.turn(asking(conversation[:3]), TextReply("12."), follow_up=False, same=same)
    both_paths.turn(asking(conversation), TextReply("Twelve."), follow_up=True, same=same)
    sent = without_cli_additions(both_paths.resident_bodies[-1]["messages"])
    assert len(sent) == 5
    assert as_blocks(sent) == as_blocks(conversation)


def test_an_image_block_arrives_intact(stack: Stack, client: anthropic.Anthropic) -> None:
    image: ImageBlockParam = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": _png_base64()},
    }
    messages: list[MessageParam] = [
        {"role": "user", "content": [image, {"type": "text", "text": "What is this?"}]}
    ]
    client.messages.create(model=MODEL, max_tokens=50, messages=messages)
    sent = stack.upstream.requests[0].body["messages"][0]["content"]
    assert image in sent


def test_thinking_blocks_pass_through_streamed_and_whole(
    stack: Stack, client: anthropic.Anthropic
) -> None:
    reply = BlocksReply(
        [
            ThinkingBlock("Let me think about it carefully.", signature="sig_real_1"),
            RedactedThinkingBlock("opaque-data"),
            TextBlock("The answer."),
        ]
    )
    stack.upstream.enqueue(reply, reply)
    with client.messages.stream(model=MODEL, max_tokens=2000, messages=HELLO) as stream:
        delta_kinds = {event.delta.type for event in stream if event.type == "content_block_delta"}
    message = client.messages.create(model=MODEL, max_tokens=2000, messages=HELLO)
    assert {"thinking_delta", "signature_delta", "text_delta"} <= delta_kinds
    thinking, redacted, text = message.content
    assert thinking.type == "thinking" and thinking.thinking == "Let me think about it carefully."
    assert thinking.signature == "sig_real_1"
    assert redacted.type == "redacted_thinking" and redacted.data == "opaque-data"
    assert text.type == "text" and text.text == "The answer."


def _sse_frames(chunks: Iterable[str]) -> list[tuple[str, str]]:
    text = "".join(chunks)
    frames = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.split("\n") if ": " in line and line[0] != ":"
        )
        if fields:
            frames.append((fields.get("event", ""), fields.get("data", "")))
    return frames


def _png_base64() -> str:
    """A valid 2x2 red PNG."""
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return base64.b64encode(png).decode()
