"""ccfleet's one ESTIMATE of tokens, made offline: no Claude tokenizer is available.

Text is 3.5 characters a token (`CHARS_PER_TOKEN`), wherever ccfleet must count tokens itself:
a request's input tokens for POST /v1/messages/count_tokens (`estimate_input_tokens`), and the
output tokens of an answer cut at a stop sequence (worker/reply/stop_sequences.py), whose
upstream count never comes. A Messages request's input counts so:

- text (system, messages, tool names/descriptions/schemas as JSON, tool inputs as JSON,
  plain-text documents): characters / 3.5, rounded up;
- images: the API's documented `width * height / 750` after scaling the long edge to at most
  1568 px, capped at 1600, with the size read from the base64 PNG, JPEG or GIF header;
  URL images and unreadable headers count 1600;
- PDFs: 2000 tokens a page (the API documents 1500 to 3000), pages counted from `/Type /Page`;
- tools: plus the tool-use system prompt the API adds (346 tokens, 313 for `any` / `tool`);
- thinking blocks count only in the last message (the API ignores earlier turns' thinking);
- every message adds 4 tokens of framing.

Real counts differ, typically by tens of percent.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct
from collections.abc import Sequence

import orjson

from shared.wire.messages import (
    Base64ImageSource,
    Base64PdfSource,
    ContentSource,
    DocumentBlock,
    ImageBlock,
    Message,
    PlainTextSource,
    TextBlock,
    ThinkingBlock,
    Tool,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
)

CHARS_PER_TOKEN = 3.5
MESSAGE_TOKENS = 4
IMAGE_MAX_TOKENS = 1600
IMAGE_MAX_EDGE_PX = 1568
PDF_PAGE_TOKENS = 2000
TOOL_PROMPT_TOKENS = 346
FORCED_TOOL_PROMPT_TOKENS = 313
IMAGE_HEADER_CHARS = 256 * 1024  # base64 read for a header: JPEG EXIF can precede the size
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def text_tokens(text: str) -> int:
    return chars_tokens(len(text))


def chars_tokens(chars: int) -> int:
    """The tokens of `chars` characters of text, rounded up."""
    return math.ceil(chars / CHARS_PER_TOKEN)


def json_tokens(value: object) -> int:
    return text_tokens(orjson.dumps(value).decode())


def estimate_input_tokens(
    *,
    messages: list[Message],
    system: str | Sequence[TextBlock] | None = None,
    tools: list[Tool] | None = None,
    tool_choice: ToolChoice | None = None,
) -> int:
    total = 0
    if isinstance(system, str):
        total += text_tokens(system)
    elif system:
        total += sum(text_tokens(block.text) for block in system)
    if tools:
        forced = tool_choice is not None and tool_choice.type in ("any", "tool")
        total += FORCED_TOOL_PROMPT_TOKENS if forced else TOOL_PROMPT_TOKENS
        total += sum(json_tokens(tool.model_dump(exclude_none=True)) for tool in tools)
    for index, message in enumerate(messages):
        total += MESSAGE_TOKENS
        if isinstance(message.content, str):
            total += text_tokens(message.content)
            continue
        is_last = index == len(messages) - 1
        total += sum(block_tokens(block, with_thinking=is_last) for block in message.content)
    return total


def block_tokens(block: object, *, with_thinking: bool = True) -> int:
    if isinstance(block, TextBlock):
        return text_tokens(block.text)
    if isinstance(block, ImageBlock):
        return image_tokens(block)
    if isinstance(block, DocumentBlock):
        return document_tokens(block)
    if isinstance(block, ToolUseBlock):
        return text_tokens(block.name) + json_tokens(block.input)
    if isinstance(block, ToolResultBlock):
        if block.content is None or isinstance(block.content, str):
            return text_tokens(block.content or "")
        return sum(block_tokens(inner) for inner in block.content)
    if isinstance(block, ThinkingBlock) and with_thinking:
        return text_tokens(block.thinking)
    return 0  # thinking of earlier turns; redacted thinking is opaque


def image_tokens(block: ImageBlock) -> int:
    size = None
    if isinstance(block.source, Base64ImageSource):
        size = image_size(_b64_prefix(block.source.data, IMAGE_HEADER_CHARS))
    if size is None:
        return IMAGE_MAX_TOKENS
    width, height = size
    scale = min(1.0, IMAGE_MAX_EDGE_PX / max(width, height, 1))
    return min(IMAGE_MAX_TOKENS, math.ceil(width * scale * height * scale / 750))


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, GIF or JPEG header, else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk the JPEG segments to the first start-of-frame marker, which holds the size."""
    pos = 2
    while pos + 9 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            pos += 1 if marker == 0xFF else 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        pos += 2 + length
    return None


def document_tokens(block: DocumentBlock) -> int:
    total = text_tokens(block.title or "") + text_tokens(block.context or "")
    source = block.source
    if isinstance(source, PlainTextSource):
        return total + text_tokens(source.data)
    if isinstance(source, ContentSource):
        if isinstance(source.content, str):
            return total + text_tokens(source.content)
        return total + sum(block_tokens(inner) for inner in source.content)
    if isinstance(source, Base64PdfSource):
        pages = len(_PDF_PAGE.findall(_b64_prefix(source.data, len(source.data))))
        return total + PDF_PAGE_TOKENS * max(1, pages)
    return total + PDF_PAGE_TOKENS  # a URL: its size is unknown here


def _b64_prefix(data: str, chars: int) -> bytes:
    prefix = data[: chars - chars % 4]
    try:
        return base64.b64decode(prefix, validate=False)
    except (binascii.Error, ValueError):
        return b""
