"""Limits on a request's JSON that its fields' types do not bound, checked before validation.

A request that validates must also travel: it is written to Redis as JSON (orjson, pydantic),
whose serializers refuse nesting deeper than 254 levels, integers outside 64 bits and strings
that are not valid UTF-8 (a lone surrogate such as `"\\ud800"` parses in Python). The body gets
there a few levels deeper (inside the job, inside arq's envelope), so it may nest at most
`MAX_JSON_DEPTH` levels. orjson itself checks all three in C (the body wrapped so that its
own depth limit falls at `MAX_JSON_DEPTH`); only a body it refuses is walked, in Python, to
name the field for the 400.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic_core import PydanticCustomError

MAX_JSON_DEPTH = 128
_ORJSON_MAX_DEPTH = 254  # measured: orjson 3 writes 254 nested containers, refuses 255
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1  # orjson writes unsigned 64-bit integers too

FIELD_ERROR = "ccfleet_field"
"""The type of a pydantic error whose message already starts with the field it names."""

_Path = tuple[Any, ...] | None  # (parent path, key): built only for containers, read on error


def field_error(field: str, problem: str) -> PydanticCustomError:
    """An error raised by a model-level check, naming its field itself (`field: problem`)."""
    return PydanticCustomError(
        FIELD_ERROR, "{field}: {problem}", {"field": field, "problem": problem}
    )


def check_json_limits(body: object) -> None:
    """Raise `field_error` if `body` could not be written to Redis as JSON, naming the field."""
    if not isinstance(body, dict | list):
        return  # the model's own validation says what is wrong
    wrapped: object = body
    for _ in range(_ORJSON_MAX_DEPTH - MAX_JSON_DEPTH):
        wrapped = [wrapped]
    try:
        orjson.dumps(wrapped)
    except orjson.JSONEncodeError:
        _name_the_field(body)
        raise field_error("body", "cannot be stored as JSON") from None


def _name_the_field(body: dict[Any, Any] | list[Any]) -> None:
    """Raise `field_error` for the first part of `body` no JSON serializer could write back."""
    stack: list[tuple[dict[Any, Any] | list[Any], _Path, int]] = [(body, None, 1)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise field_error(_dotted(path), f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        # `type(...) is` and the ASCII fast paths: this runs over every value of a 32 MB body.
        for key, value in node.items() if type(node) is dict else enumerate(node):
            if type(key) is str and not key.isascii():
                _check_text(key, path, None)  # named by its parent: it may not be printable
            kind = type(value)
            if kind is str:
                if not value.isascii():
                    _check_text(value, path, key)
            elif kind is dict or kind is list:
                stack.append((value, (path, key), depth + 1))
            elif kind is int and not INT_MIN <= value <= INT_MAX:
                raise field_error(_dotted((path, key)), "integer out of the 64-bit range")


def _check_text(text: str, path: _Path, key: object) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        where = _dotted(path if key is None else (path, key))
        raise field_error(where, "text with a lone surrogate (not UTF-8)") from exc


def _dotted(path: _Path) -> str:
    parts: list[str] = []
    while path is not None:
        path, key = path
        parts.append(str(key))
    parts.reverse()
    if len(parts) > 12:  # a path into deep nesting: its start names the field
        parts = [*parts[:12], "…"]
    return ".".join(parts) or "body"
