from __future__ import annotations

import anthropic

from tests.conftest import Stack
from tests.fakes.upstream import TextReply


def test_sdk_gets_the_upstream_text(stack: Stack) -> None:
    stack.upstream.enqueue(TextReply("Hello there, world."))
    client = anthropic.Anthropic(base_url=stack.url, api_key="x", max_retries=0)
    message = client.messages.create(
        model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text == "Hello there, world.", stack.logs()
