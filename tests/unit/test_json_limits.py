"""What a request body may hold so that it can be written to Redis as JSON."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic_core import PydanticCustomError

from shared.wire.json_limits import MAX_JSON_DEPTH, check_json_limits


def nested(containers: int) -> Any:
    value: Any = 1
    for _ in range(containers):
        value = [value]
    return value


def problem(body: object) -> str:
    with pytest.raises(PydanticCustomError) as caught:
        check_json_limits(body)
    return caught.value.message()


def test_a_body_nested_to_the_limit_passes_and_one_level_more_is_refused_by_name() -> None:
    check_json_limits({"a": nested(MAX_JSON_DEPTH - 1)})
    message = problem({"a": nested(MAX_JSON_DEPTH)})
    assert message.startswith("a.0.0.")
    assert message.endswith(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")


def test_a_body_at_the_limit_still_serializes_inside_a_job_and_arqs_envelope() -> None:
    body = {"a": nested(MAX_JSON_DEPTH - 1)}
    envelope = {"a": [{"job_id": "j", "request": body}], "k": {}}
    assert orjson.loads(orjson.dumps(envelope)) == envelope


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, 10**30])
def test_an_integer_past_64_bits_is_refused_by_name(value: int) -> None:
    assert problem({"tools": [{"input_schema": {"max": value}}]}) == (
        "tools.0.input_schema.max: integer out of the 64-bit range"
    )


def test_integers_at_the_64_bit_edges_pass() -> None:
    check_json_limits({"a": [2**64 - 1, -(2**63)]})


def test_a_lone_surrogate_in_a_value_or_a_key_is_refused_naming_where() -> None:
    assert problem({"messages": [{"content": "hi \ud800"}]}).startswith("messages.0.content:")
    assert problem({"input": {"\udc00": 1}}).startswith("input:")


def test_ordinary_text_in_any_script_passes() -> None:
    check_json_limits({"text": "héllo 世界 😀", "keys": {"ключ": "значение"}})
