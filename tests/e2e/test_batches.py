"""The Message Batches API through the anthropic SDK's `client.messages.batches`, answered by
real workers running the real CLI against the fake upstream."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import pytest
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from anthropic.types.messages import MessageBatch

from tests.conftest import StackFactory
from tests.fakes.upstream import (
    ErrorReply,
    MidStreamErrorReply,
    RecordedRequest,
    Reply,
    TextReply,
    subscription_limit_reply,
)
from tests.processes import http_ok, wait_until
from tests.sdk import SdkClients, text_of

MODEL = "claude-sonnet-4-5"


def params(text: str, stop_sequences: list[str] | None = None) -> MessageCreateParamsNonStreaming:
    request: MessageCreateParamsNonStreaming = {
        "model": MODEL,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": text}],
    }
    if stop_sequences is not None:
        request["stop_sequences"] = stop_sequences
    return request


def wait_ended(client: anthropic.Anthropic, batch_id: str, timeout_s: float = 60) -> MessageBatch:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} did not end within {timeout_s}s")


def reply_by_prompt(recorded: RecordedRequest) -> Reply | None:
    text = str(recorded.body.get("messages", [])[-1:])
    if "STOPPY" in text:
        return TextReply("one two STOP three four")
    if "MISSING" in text:
        return ErrorReply(404, "not_found_error", "model: not here")
    return TextReply("plain answer")


def test_a_batch_created_with_the_sdk_ends_with_succeeded_and_errored_results(
    make_stack: StackFactory,
    sdk_clients: SdkClients,
) -> None:
    stack = make_stack(CCFLEET_WORKER_SLOTS="3")
    stack.upstream.set_responder(reply_by_prompt)
    client = sdk_clients.anthropic_client(stack.url, "k")

    batch = client.messages.batches.create(
        requests=[
            {"custom_id": "plain", "params": params("Say something.")},
            {"custom_id": "stop", "params": params("STOPPY", stop_sequences=["STOP"])},
            {"custom_id": "upstream-error", "params": params("MISSING")},
            {"custom_id": "invalid", "params": {"model": MODEL, "messages": []}},  # type: ignore[typeddict-item]  # no max_tokens: the refusal is the point
        ]
    )

    assert batch.id.startswith("msgbatch_")
    assert batch.processing_status == "in_progress"
    assert batch.results_url is None
    counts = batch.request_counts
    assert (counts.processing, counts.errored) == (3, 1)
    ended = wait_ended(client, batch.id)
    assert ended.request_counts.model_dump() == {
        "processing": 0,
        "succeeded": 2,
        "errored": 2,
        "canceled": 0,
        "expired": 0,
    }
    assert ended.ended_at is not None
    assert ended.results_url == f"{stack.url}/v1/messages/batches/{batch.id}/results"
    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert set(results) == {"plain", "stop", "upstream-error", "invalid"}
    plain = results["plain"]
    assert plain.type == "succeeded"
    assert text_of(plain.message) == "plain answer"
    stop = results["stop"]
    assert stop.type == "succeeded"
    assert stop.message.stop_reason == "stop_sequence"
    assert stop.message.stop_sequence == "STOP"
    assert text_of(stop.message) == "one two "
    upstream_error = results["upstream-error"]
    assert upstream_error.type == "errored"
    assert upstream_error.error.error.type == "not_found_error"
    invalid = results["invalid"]
    assert invalid.type == "errored"
    assert invalid.error.error.type == "invalid_request_error"
    assert "max_tokens" in invalid.error.error.message


def test_batch_requests_run_again_after_transient_and_mid_answer_failures_and_account_limits(
    make_stack: StackFactory,
    sdk_clients: SdkClients,
) -> None:
    stack = make_stack(CCFLEET_WORKER_SLOTS="3")
    first_failures: dict[str, Reply] = {
        "FLAKY": ErrorReply(529, "overloaded_error", "Overloaded"),
        "MIDWAY": MidStreamErrorReply(),
        "LIMITED": subscription_limit_reply(time.time() + 3),
    }

    def fail_once(recorded: RecordedRequest) -> Reply | None:
        text = str(recorded.body.get("messages", [])[-1:])
        for marker in list(first_failures):
            if marker in text:
                return first_failures.pop(marker)
        return TextReply("fine now")

    stack.upstream.set_responder(fail_once)
    client = sdk_clients.anthropic_client(stack.url, "k")
    batch = client.messages.batches.create(
        requests=[
            {"custom_id": marker.lower(), "params": params(marker)}
            for marker in list(first_failures)
        ]
    )

    ended = wait_ended(client, batch.id)

    assert not first_failures  # each failed once
    assert ended.request_counts.succeeded == 3, ended.request_counts
    for result in client.messages.batches.results(batch.id):
        assert result.result.type == "succeeded"
        assert text_of(result.result.message) == "fine now"


MALFORMED: list[tuple[dict[str, Any], str]] = [
    ({"requests": []}, "requests"),
    ({"requests": [{"custom_id": "a b", "params": params("x")}]}, "custom_id"),
    ({"requests": [{"custom_id": "x" * 65, "params": params("x")}]}, "custom_id"),
    ({"requests": [{"custom_id": "a", "params": params("x")}] * 2}, "custom_id"),
    ({"requests": [{"custom_id": "a"}]}, "params"),
    ({"requests": [{"custom_id": "a", "params": params("x"), "more": 1}]}, "more"),
]


def test_a_malformed_batch_is_refused_whole_with_400_and_nothing_is_created(
    make_stack: StackFactory,
    sdk_clients: SdkClients,
) -> None:
    stack = make_stack(workers=0, wait_ready=False)
    wait_until(lambda: http_ok(f"{stack.url}/health"), 30, f"{stack.url}/health")
    client = sdk_clients.anthropic_client(stack.url, "k")
    for body, complaint in MALFORMED:
        with pytest.raises(anthropic.BadRequestError) as refused:
            client.messages.batches.create(**body)
        assert complaint in refused.value.message, body
    assert client.messages.batches.list().data == []
