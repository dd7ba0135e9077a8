"""arq jobs travel as JSON, never pickles; front ends and workers use the same codec."""

from __future__ import annotations

from typing import Any

import orjson


def serialize(value: dict[str, Any]) -> bytes:
    # arq also stores job results, which for a cancelled or failed job is an exception:
    # kept as its repr (nobody reads results back as objects).
    return orjson.dumps(value, default=repr)


def deserialize(raw: bytes) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(raw)
    return value
