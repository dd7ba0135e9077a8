"""A new batch's requests as the store keeps them, and the batch object the API shows."""

from __future__ import annotations

from typing import Any

import orjson

from api.batch_intake import RequestRules, stored_requests
from shared.access.client_keys import ClientKey
from shared.batches.wire import BatchState


def test_invalid_params_become_an_errored_result_naming_the_field_and_valid_ones_none() -> None:
    good = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    prefilled = {**good, "messages": [{"role": "assistant", "content": "so"}]}
    items: list[Any] = [
        {"custom_id": "good", "params": good},
        {"custom_id": "no-max", "params": {"model": "m", "messages": good["messages"]}},
        {"custom_id": "prefilled", "params": prefilled},
    ]

    stored = list(stored_requests(items, RequestRules(key=None, max_tokens_limit=1000)))

    assert [s.index for s in stored] == [0, 1, 2]
    assert orjson.loads(stored[0].body) == {"custom_id": "good", "params": good}
    assert stored[0].refused is None
    assert stored[1].refused is not None
    no_max = orjson.loads(stored[1].refused)
    assert no_max["custom_id"] == "no-max"
    assert no_max["result"]["type"] == "errored"
    assert no_max["result"]["error"]["type"] == "error"
    assert no_max["result"]["error"]["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }
    assert stored[2].refused is not None
    assert "role `user`" in orjson.loads(stored[2].refused)["result"]["error"]["error"]["message"]
    assert items == [None, None, None]  # each item dropped once stored: held once


def test_a_model_the_key_may_not_use_and_too_many_max_tokens_are_errored_results() -> None:
    good = {
        "model": "claude-haiku-4-5",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}],
    }
    key = ClientKey(name="k", digest="d", created_at=0, models=["claude-haiku-*"])
    items: list[Any] = [
        {"custom_id": "ok", "params": good},
        {"custom_id": "model", "params": {**good, "model": "claude-opus-4-1"}},
        {"custom_id": "tokens", "params": {**good, "max_tokens": 1001}},
    ]

    stored = list(stored_requests(items, RequestRules(key=key, max_tokens_limit=1000)))

    errors = [
        orjson.loads(s.refused)["result"]["error"]["error"] if s.refused else None for s in stored
    ]
    assert errors[0] is None
    assert errors[1] is not None and errors[1]["type"] == "permission_error"
    assert errors[2] is not None and errors[2]["type"] == "invalid_request_error"
    assert "max_tokens" in errors[2]["message"]


def test_the_batch_object_counts_what_is_left_as_processing_and_links_results_once_ended() -> None:
    raw = {
        "id": "msgbatch_1",
        "owner": "",
        "status": "in_progress",
        "count": "10",
        "succeeded": "3",
        "errored": "1",
        "created_at_ms": "1795000000000",
        "expires_at_ms": "1795086400000",
        "ended_at_ms": "0",
        "fill": "",
    }
    state = BatchState.from_hash({k.encode(): v.encode() for k, v in raw.items()})

    shown = state.to_api("http://fleet")

    assert shown["request_counts"] == {
        "processing": 6,
        "succeeded": 3,
        "errored": 1,
        "canceled": 0,
        "expired": 0,
    }
    assert shown["created_at"] == "2026-11-18T11:06:40.000Z"
    assert shown["ended_at"] is None
    assert shown["results_url"] is None
    ended = BatchState.from_hash(
        {k.encode(): v.encode() for k, v in {**raw, "status": "ended", "ended_at_ms": "1"}.items()}
    )
    assert ended.to_api("http://fleet")["results_url"] == (
        "http://fleet/v1/messages/batches/msgbatch_1/results"
    )
