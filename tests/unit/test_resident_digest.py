"""Which history continues a resident conversation (worker/cli/resident.py's digest)."""

from __future__ import annotations

from typing import Any

from shared.wire.messages import MessagesRequest
from worker.cli.command import cli_messages
from worker.cli.resident import continuation_of, conversation_digest

ANSWER = {"role": "assistant", "content": [{"type": "text", "text": "12."}]}


def _request(messages: list[dict[str, Any]]) -> MessagesRequest:
    return MessagesRequest.model_validate(
        {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": messages}
    )


def _held_after_answering(question: dict[str, Any]) -> str:
    """What the CLI that answered `question` with ANSWER holds (worker/reply/answer.py)."""
    request = _request([question])
    return conversation_digest("key", request, [*cli_messages(request), ANSWER])


def _continuation_digest(messages: list[dict[str, Any]]) -> str | None:
    request = _request(messages)
    continuation = continuation_of("key", request, cli_messages(request))
    return continuation.held if continuation else None


def test_an_answer_sent_back_as_a_string_continues_the_cli_that_holds_it_as_a_text_block() -> None:
    question = {"role": "user", "content": "What is 4 times 3?"}
    held = _held_after_answering(question)
    next_turn = [
        question,
        {"role": "assistant", "content": "12."},
        {"role": "user", "content": "Why?"},
    ]
    assert _continuation_digest(next_turn) == held


def test_a_question_sent_again_as_a_text_block_continues_the_cli_that_got_a_string() -> None:
    held = _held_after_answering({"role": "user", "content": "What is 4 times 3?"})
    as_block = {"role": "user", "content": [{"type": "text", "text": "What is 4 times 3?"}]}
    assert _continuation_digest([as_block, ANSWER, {"role": "user", "content": "Why?"}]) == held


def test_an_edited_answer_does_not_continue_the_cli() -> None:
    question = {"role": "user", "content": "What is 4 times 3?"}
    held = _held_after_answering(question)
    edited = [
        question,
        {"role": "assistant", "content": "13."},
        {"role": "user", "content": "Why?"},
    ]
    assert _continuation_digest(edited) != held
