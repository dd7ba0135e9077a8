"""The anthropic and openai SDKs as tests use them: clients that are closed when the test
ends, and readers for what they return (a reply's content is a union of block types, an
HTTP error's body is typed `object`)."""

from __future__ import annotations

import contextlib
from typing import Any

import anthropic
import openai
from anthropic.types import Message


class SdkClients:
    """Makes a test's SDK clients and closes them with the test (the `sdk_clients` fixture).

    A client keeps its connections open until it is closed. One left to the garbage collector,
    often in a cycle through a caught exception, warns about its socket later, in whichever
    test runs then; with warnings as errors that test fails."""

    def __init__(self, exit_stack: contextlib.ExitStack) -> None:
        self._exit_stack = exit_stack

    def anthropic_client(
        self, url: str, key: str | None = "client-key", *, timeout_s: float | None = None
    ) -> anthropic.Anthropic:
        client = (
            anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)
            if timeout_s is None
            else anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, timeout=timeout_s)
        )
        return self._exit_stack.enter_context(client)

    def openai_client(self, url: str, key: str = "client-key") -> openai.OpenAI:
        """A client of the OpenAI-compatible API under `url` (its /v1)."""
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
        return self._exit_stack.enter_context(client)


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
