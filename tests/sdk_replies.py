"""Reading what the SDKs return: a reply's content is a union of block types, and an HTTP
error's body is typed `object`."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
from anthropic.types import Message


def text_of(message: Message) -> str:
    """The text of a reply whose first block is a text block (AssertionError otherwise)."""
    block = message.content[0]
    assert block.type == "text", message.content
    return block.text


def error_body(error: anthropic.APIStatusError | openai.APIStatusError) -> dict[str, Any]:
    """The JSON object an SDK's HTTP error carries (AssertionError when it is none)."""
    body = error.body
    assert isinstance(body, dict), body
    return body
