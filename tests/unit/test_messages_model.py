"""The Messages API request model: what it accepts, what it refuses, what it forwards."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from shared.wire.messages import BASE64_PATTERN, MessagesRequest

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGBgAAAABQABh6FO1AAAAABJRU5ErkJggg"
)
PDF = "JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K"

IMAGE_BASE64 = {
    "type": "image",
    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
}
IMAGE_URL = {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
DOCUMENT_PDF = {
    "type": "document",
    "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
    "title": "Report",
    "context": "Quarterly numbers",
    "citations": {"enabled": True},
    "cache_control": {"type": "ephemeral"},
}
DOCUMENT_TEXT = {
    "type": "document",
    "source": {"type": "text", "media_type": "text/plain", "data": "The sky is blue."},
}
DOCUMENT_CONTENT = {
    "type": "document",
    "source": {
        "type": "content",
        "content": [{"type": "text", "text": "First chunk."}, IMAGE_BASE64],
    },
}
DOCUMENT_URL = {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}
TOOL_USE = {
    "type": "tool_use",
    "id": "toolu_01",
    "name": "get_weather",
    "input": {"city": "Paris", "units": {"temp": "C"}, "days": [1, 2.5, None]},
}
TOOL_RESULT = {
    "type": "tool_result",
    "tool_use_id": "toolu_01",
    "is_error": True,
    "content": [{"type": "text", "text": "Timed out"}, IMAGE_URL, DOCUMENT_TEXT],
}
TOOL_RESULT_TEXT = {"type": "tool_result", "tool_use_id": "toolu_02", "content": "21 C"}
THINKING = {"type": "thinking", "thinking": "Let me check.", "signature": "EqQBCkYIBxgC"}
REDACTED_THINKING = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"}
TEXT_CACHED = {
    "type": "text",
    "text": "Describe these.",
    "cache_control": {"type": "ephemeral", "ttl": "1h"},
}

CONVERSATION: list[dict[str, Any]] = [
    {
        "role": "user",
        "content": [TEXT_CACHED, IMAGE_BASE64, IMAGE_URL, DOCUMENT_PDF, DOCUMENT_TEXT],
    },
    {"role": "assistant", "content": [THINKING, REDACTED_THINKING, TOOL_USE]},
    {"role": "user", "content": [TOOL_RESULT, DOCUMENT_CONTENT, DOCUMENT_URL]},
    {"role": "assistant", "content": [{"type": "text", "text": "Anything else?"}]},
    {"role": "user", "content": [TOOL_RESULT_TEXT]},
    {"role": "assistant", "content": "Plain string content."},
    {"role": "user", "content": "Thanks."},
]


def request_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hello"}],
    }
    body.update(fields)
    return body


def parse(**fields: Any) -> MessagesRequest:
    return MessagesRequest.model_validate(request_body(**fields))


def rejected_at(**fields: Any) -> list[tuple[str | int, ...]]:
    with pytest.raises(ValidationError) as caught:
        parse(**fields)
    return [tuple(problem["loc"]) for problem in caught.value.errors()]


def test_every_block_type_is_accepted() -> None:
    request = parse(messages=CONVERSATION)
    assert len(request.messages) == len(CONVERSATION)


def test_forwardable_messages_are_exactly_what_the_client_sent() -> None:
    assert parse(messages=CONVERSATION).forwardable_messages() == CONVERSATION


def test_forwardable_messages_fill_in_no_defaults() -> None:
    sent = {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    [message] = parse(messages=[sent]).forwardable_messages()
    assert message == sent
    assert "cache_control" not in message["content"][0]


def test_system_may_be_a_string() -> None:
    request = parse(system="You are terse.")
    assert request.system_text() == "You are terse."


def test_system_may_be_text_blocks() -> None:
    system = [
        {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Answer in French."},
    ]
    assert parse(system=system).system_text() == "You are terse.\n\nAnswer in French."


def test_no_system_gives_no_system_text() -> None:
    assert parse().system_text() is None


def test_sampling_and_other_request_fields_are_accepted() -> None:
    request = parse(
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        stop_sequences=["\n\nHuman:"],
        stream=True,
        metadata={"user_id": "u-1"},
        service_tier="auto",
        thinking={"type": "enabled", "budget_tokens": 2048},
        tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    assert (request.temperature, request.top_p, request.top_k) == (0.2, 0.9, 40)
    assert request.stop_sequences == ["\n\nHuman:"]
    assert request.stream is True


def test_an_unknown_top_level_field_is_rejected() -> None:
    assert ("temprature",) in rejected_at(temprature=0.5)


def test_an_unknown_field_in_a_block_is_rejected() -> None:
    content = [{"type": "text", "text": "hi", "colour": "red"}]
    locations = rejected_at(messages=[{"role": "user", "content": content}])
    assert any(loc[:2] == ("messages", 0) and loc[-1] == "colour" for loc in locations)


def test_an_unknown_block_type_is_rejected() -> None:
    content = [{"type": "hologram", "data": "?"}]
    locations = rejected_at(messages=[{"role": "user", "content": content}])
    assert any(loc[:3] == ("messages", 0, "content") for loc in locations)


@pytest.mark.parametrize("role", ["system", "tool", "human", ""])
def test_a_role_other_than_user_or_assistant_is_rejected(role: str) -> None:
    locations = rejected_at(messages=[{"role": role, "content": "hi"}])
    assert ("messages", 0, "role") in locations


def test_an_empty_conversation_is_rejected() -> None:
    assert ("messages",) in rejected_at(messages=[])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_tokens", 0),
        ("temperature", 1.5),
        ("top_p", -0.1),
        ("top_k", -1),
        ("model", ""),
        ("service_tier", "priority"),
    ],
)
def test_out_of_range_sampling_values_are_rejected(field: str, value: Any) -> None:
    assert (field,) in rejected_at(**{field: value})


def test_a_thinking_budget_below_the_minimum_is_rejected() -> None:
    locations = rejected_at(thinking={"type": "enabled", "budget_tokens": 100})
    assert any(loc[0] == "thinking" and loc[-1] == "budget_tokens" for loc in locations)


def test_an_image_of_an_unsupported_media_type_is_rejected() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "x"}}
    locations = rejected_at(messages=[{"role": "user", "content": [image]}])
    assert any(loc[-1] == "media_type" for loc in locations)


def test_a_thinking_block_without_a_signature_is_rejected() -> None:
    thinking = {"type": "thinking", "thinking": "hmm"}
    locations = rejected_at(messages=[{"role": "assistant", "content": [thinking]}])
    assert any(loc[-1] == "signature" for loc in locations)


@pytest.mark.parametrize("data", ["QUJD", "QUI", "QUI=", "QQ", "QQ=", "QQ=="])
def test_base64_data_may_leave_its_padding_off(data: str) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
    parse(messages=[{"role": "user", "content": [image]}])
    assert re.fullmatch(BASE64_PATTERN, data)


@pytest.mark.parametrize("data", ["Q", "QUJD=", "QUJD==", "QUI==", "QUJ\n", "QU J"])
def test_base64_data_off_the_documents_pattern_is_rejected(data: str) -> None:
    # b64decode alone takes padding after a whole group; the served document says no.
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
    locations = rejected_at(messages=[{"role": "user", "content": [image]}])
    assert any(loc[-1] == "data" for loc in locations)
    assert not re.fullmatch(BASE64_PATTERN, data)
