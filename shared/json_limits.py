"""Limits on a request's JSON that its fields' types do not bound, checked before validation.

A request that validates must also travel: it is written to Redis as JSON (orjson, pydantic),
whose serializers refuse nesting deeper than about 254 levels, integers outside 64 bits and
strings that are not valid UTF-8 (a lone surrogate such as `"\\ud800"` parses in Python). So
the whole body is walked once, iteratively: containers nested deeper than `MAX_JSON_DEPTH`,
integers beyond 64 bits and lone surrogates (in keys too) are a 400 naming the field.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import PydanticCustomError

MAX_JSON_DEPTH = 64
_INT_MIN = -(2**63)
_INT_MAX = 2**63 - 1

FIELD_ERROR = "ccfleet_field"
"""The type of a pydantic error whose message already starts with the field it names."""

_Path = tuple[Any, ...] | None  # (parent path, key): built only for containers, read on error


def field_error(field: str, problem: str) -> PydanticCustomError:
    """An error raised by a model-level check, naming its field itself (`field: problem`)."""
    return PydanticCustomError(
        FIELD_ERROR, "{field}: {problem}", {"field": field, "problem": problem}
    )


def check_json_limits(body: object) -> None:
    """Raise `field_error` for the first part of `body` no JSON serializer could write back."""
    if not isinstance(body, dict | list):
        return  # the model's own validation says what is wrong
    stack: list[tuple[object, _Path, int]] = [(body, None, 1)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise field_error(_dotted(path), f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        items = node.items() if isinstance(node, dict) else enumerate(node)  # type: ignore[arg-type]  # only dicts and lists are pushed
        for key, value in items:
            if isinstance(key, str):
                _check_text(key, path, None)  # named by its parent: it may not be printable
            if isinstance(value, dict | list):
                stack.append((value, (path, key), depth + 1))
            elif isinstance(value, str):
                _check_text(value, path, key)
            elif isinstance(value, int) and not _INT_MIN <= value <= _INT_MAX:
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
    return ".".join(reversed(parts)) or "body"
