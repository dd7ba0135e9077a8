"""The offline token estimate: POST /v1/messages/count_tokens, and a cut answer's output."""

from __future__ import annotations

import base64
import struct
from typing import Any

import pytest

from shared.wire.messages import Message, TextBlock, Tool, ToolChoiceAny
from shared.wire.token_estimate import (
    IMAGE_MAX_TOKENS,
    PDF_PAGE_TOKENS,
    chars_tokens,
    estimate_input_tokens,
    image_size,
    text_tokens,
)


def messages(*contents: Any) -> list[Message]:
    roles = ["user", "assistant"]
    return [
        Message.model_validate({"role": roles[i % 2], "content": content})
        for i, content in enumerate(contents)
    ]


def count(*contents: Any, **request: Any) -> int:
    return estimate_input_tokens(messages=messages(*contents), **request)


def png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0" * 4


def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0" + b"\1\1\0\0\1\0\1\0\0"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\1\x11\0"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def image_block(data: bytes, media_type: str = "image/png") -> dict[str, Any]:
    source = {"type": "base64", "media_type": media_type, "data": base64.b64encode(data).decode()}
    return {"type": "image", "source": source}


def tool(name: str, properties: dict[str, Any]) -> Tool:
    schema = {"type": "object", "properties": properties}
    return Tool(name=name, description=f"The {name} tool.", input_schema=schema)


def test_text_is_three_and_a_half_characters_a_token_rounded_up() -> None:
    assert [text_tokens("x" * n) for n in (0, 1, 7, 8, 35)] == [0, 1, 2, 3, 10]
    assert chars_tokens(3500) == text_tokens("z" * 3500) == 1000


def test_the_estimate_never_shrinks_as_the_text_grows() -> None:
    counts = [count("x" * length) for length in range(0, 2000, 7)]
    assert counts == sorted(counts)
    assert count("word " * 1000) > count("word " * 100) > count("word")


def test_a_system_prompt_is_counted_as_a_string_or_as_blocks() -> None:
    prompt = "You are terse. " * 20
    assert count("hi", system=prompt) > count("hi")
    blocks = [TextBlock(type="text", text=prompt[:150]), TextBlock(type="text", text=prompt[150:])]
    assert count("hi", system=blocks) == count("hi", system=prompt)


def test_png_and_jpeg_sizes_are_read_from_their_headers() -> None:
    assert image_size(png(640, 480)) == (640, 480)
    assert image_size(jpeg(300, 200)) == (300, 200)
    assert image_size(b"not an image") is None


def test_an_image_costs_width_times_height_over_750_up_to_a_cap() -> None:
    text_only = count([{"type": "text", "text": "What is this?"}])

    def with_image(data: bytes, media_type: str = "image/png") -> int:
        return count([image_block(data, media_type), {"type": "text", "text": "What is this?"}])

    assert with_image(png(200, 300)) - text_only == 80
    assert with_image(jpeg(750, 100), "image/jpeg") - text_only == 100
    assert with_image(png(4000, 4000)) - text_only == IMAGE_MAX_TOKENS
    assert with_image(b"garbage") - text_only == IMAGE_MAX_TOKENS


def test_an_image_given_by_url_counts_as_a_full_size_image() -> None:
    url_image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    assert count([url_image]) - count([]) == IMAGE_MAX_TOKENS


def test_tools_add_their_schemas_and_the_tool_prompt() -> None:
    small = tool("get_time", {})
    large = tool("search", {f"field_{i}": {"type": "string"} for i in range(30)})
    assert count("hi", tools=[small]) > count("hi")
    assert count("hi", tools=[large]) > count("hi", tools=[small])
    assert count("hi", tools=[small, large]) > count("hi", tools=[large])
    forced = ToolChoiceAny(type="any")
    assert count("hi", tools=[small], tool_choice=forced) < count("hi", tools=[small])


def test_tool_calls_and_results_are_counted_by_their_json_and_text() -> None:
    def call(query: str) -> list[dict[str, Any]]:
        return [{"type": "tool_use", "id": "toolu_1", "name": "search", "input": {"q": query}}]

    def result(text: str) -> list[dict[str, Any]]:
        return [{"type": "tool_result", "tool_use_id": "toolu_1", "content": text}]

    assert count("find", call("a" * 500), result("ok")) > count("find", call("a"), result("ok"))
    assert count("find", call("a"), result("b" * 500)) > count("find", call("a"), result("ok"))


def test_documents_count_by_text_length_and_pdfs_by_page() -> None:
    def text_document(text: str) -> dict[str, Any]:
        source = {"type": "text", "media_type": "text/plain", "data": text}
        return {"type": "document", "source": source}

    assert count([text_document("z" * 3500)]) - count([text_document("")]) == 1000
    pdf = b"%PDF-1.4\n<</Type /Pages /Count 2>>\n<</Type /Page>>\n<</Type/Page>>\n%%EOF"
    data = base64.b64encode(pdf).decode()
    source = {"type": "base64", "media_type": "application/pdf", "data": data}
    assert count([{"type": "document", "source": source}]) - count([]) == 2 * PDF_PAGE_TOKENS


@pytest.mark.parametrize("is_last", [True, False])
def test_thinking_counts_only_in_the_last_message(is_last: bool) -> None:
    thinking = [{"type": "thinking", "thinking": "t" * 700, "signature": "sig"}]
    plain: list[Any] = [{"type": "text", "text": "x"}]
    if is_last:
        assert count("q", thinking + plain) > count("q", plain)
    else:
        assert count("q", thinking + plain, "next") == count("q", plain, "next")
