"""Schemathesis hooks for tests/e2e/test_api_fuzz.py (loaded through SCHEMATHESIS_HOOKS).

The served document states every rule of the API that JSON Schema can (api/openapi.py). The
few it cannot are here: a schema-valid request breaking one of them is refused with a 400 by
design, so the positive cases that break exactly such a rule are dropped (negative cases are
kept: they must still be refused, never a 500). Each rule names where the server holds it.
"""

from __future__ import annotations

import ast
import threading
from collections import Counter
from typing import Any

import orjson
import schemathesis

# Imported now, at start-up: schemathesis imports its ASGI transport (and with it anyio, which
# compiles its own source) on first use, inside a worker thread's deep recursion, where
# CPython 3.11's compile() failed once with "AST constructor recursion depth mismatch".
import schemathesis.transport.asgi  # for that side effect alone
from pydantic_core import PydanticCustomError
from schemathesis import Case
from schemathesis.hooks import HookContext

from shared.wire.json_limits import INT_MAX, INT_MIN, check_json_limits

AnyCase = Case[Any]  # a case of any operation

# CPython 3.11 keeps the AST constructor's recursion depth per interpreter, not per thread
# (python/cpython#106905): two threads in ast.parse at once can fail one of them with "AST
# constructor recursion depth mismatch". Schemathesis's two workers do that when Hypothesis
# describes the lambdas of their filters (seen in 2 of ~10 whole-suite runs, 2026-12-07): one at
# a time, then. Parsing is a sliver of a case's cost; the second worker still overlaps the waits.
_ast_parse = ast.parse
_one_parse_at_a_time = threading.Lock()


def _parse_alone(*args: Any, **kwargs: Any) -> Any:
    with _one_parse_at_a_time:
        return _ast_parse(*args, **kwargs)


ast.parse = _parse_alone

_NAMED_TOOL_PATHS = frozenset({"/v1/messages", "/v1/chat/completions"})
_PAGED_PATHS = frozenset({"/v1/models", "/v1/messages/batches"})
_BATCH_CREATE = "/v1/messages/batches"
_CHAT = "/v1/chat/completions"
_RESPONSES = "/v1/responses"
_INSTRUCTIONS = frozenset({"system", "developer"})  # become `system`, not a turn


@schemathesis.hook
def filter_case(context: HookContext, case: AnyCase) -> bool:
    """Keep a case unless it is positive and breaks a rule the document cannot state."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return True
    return not (
        _not_storable_as_json(case.body)
        or _pages_both_ways(case)
        or _custom_id_twice(case)
        or _names_no_tool(case)
        or _not_ending_with_the_user(case)
        or _responses_input_not_ending_with_the_user(case)
        or _nul_in_responses_instructions(case)
        or _cursor_of_models(case)
        or _arguments_not_json(case)
    )


@schemathesis.hook
def map_case(context: HookContext, case: AnyCase) -> AnyCase:
    """JSON Schema cannot tell 5.0 from 5, and calls both integers; the request models are
    strict (shared/wire/strict_model.py: a value of the wrong JSON type is a 400). A positive
    case writes its integral numbers as integers: the same value by the document."""
    meta = case.meta
    if meta is not None and meta.generation.mode.is_positive:
        case.body = _integral_as_int(case.body)
    return case


def _not_storable_as_json(body: object) -> bool:
    """A lone surrogate in a string, an integer past 64 bits inside a free-form object (declared
    integer fields say their range), or nesting past 128 levels: the body could not be written
    to Redis as JSON. shared/wire/json_limits.py refuses it on every route (RequestBody, and
    api/batch_intake.py for a batch's requests)."""
    try:
        check_json_limits(body)
    except PydanticCustomError:
        return True
    return False


def _pages_both_ways(case: AnyCase) -> bool:
    """`before_id` with `after_id`: a page is counted from one end (api/routes/models.py,
    api/routes/batches.py); OpenAPI cannot make two parameters exclude each other."""
    query = case.query or {}
    return case.path in _PAGED_PATHS and "before_id" in query and "after_id" in query


def _custom_id_twice(case: AnyCase) -> bool:
    """Each `custom_id` of a batch is unique (api/batch_intake.py): JSON Schema's uniqueItems
    compares whole items, not one of their fields."""
    if case.path != _BATCH_CREATE or case.method.upper() != "POST":
        return False
    requests = case.body.get("requests") if isinstance(case.body, dict) else None
    if not isinstance(requests, list):
        return False
    ids = Counter(r.get("custom_id") for r in requests if isinstance(r, dict))
    return any(count > 1 for count in ids.values())


def _names_no_tool(case: AnyCase) -> bool:
    """A `tool_choice` that names a tool names one of `tools` (shared/wire/messages.py
    `_tool_choice_names_a_tool`; the chat route converts to that request): a reference
    between two fields, which JSON Schema cannot state."""
    body: Any = case.body
    if case.path not in _NAMED_TOOL_PATHS or not isinstance(body, dict):
        return False
    named = _named_tool(body.get("tool_choice"))
    if named is None:
        return False
    tools = body.get("tools") or []
    return named not in {_tool_name(tool) for tool in tools if isinstance(tool, dict)}


def _not_ending_with_the_user(case: AnyCase) -> bool:
    """The conversation ends with the client's turn: the CLI cannot continue a prefilled
    assistant turn (api/routes/messages.py `ensure_answerable`, also for chat, whose tool
    messages become a user turn). JSON Schema can constrain the first items of an array, not
    its last."""
    body = case.body
    if case.method.upper() != "POST" or not isinstance(body, dict):
        return False
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return False
    roles = [m.get("role") for m in messages if isinstance(m, dict)]
    if case.path == "/v1/messages":
        return roles[-1:] != ["user"]
    if case.path == _CHAT:
        turns = [role for role in roles if role not in _INSTRUCTIONS]
        return turns[-1:] not in (["user"], ["tool"])
    return False


def _responses_input_not_ending_with_the_user(case: AnyCase) -> bool:
    """The same rule for /v1/responses (api/responses/translation.py): its input items' last
    turn is the client's, a user message or a function call's output; instructions (system,
    developer) and messages with no text or image (an empty input too) are not turns."""
    body = case.body
    if case.path != _RESPONSES or not isinstance(body, dict):
        return False
    items = body.get("input")
    if not isinstance(items, list):
        return items == ""
    turns = [_responses_turn(item) for item in items if isinstance(item, dict)]
    return [turn for turn in turns if turn is not None][-1:] != ["user"]


def _nul_in_responses_instructions(case: AnyCase) -> bool:
    """System and developer messages become the system prompt, which takes no NUL
    (shared/wire/messages.py `_without_nul`); the document can say it of `instructions`, not
    of a message whose role decides it."""
    body = case.body
    if case.path != _RESPONSES or not isinstance(body, dict):
        return False
    items = body.get("input")
    instructions = [
        item.get("content")
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict) and item.get("role") in _INSTRUCTIONS
    ]
    return any("\x00" in text for text in _strings(instructions))


def _strings(value: object) -> list[str]:
    """Every string inside `value`, however nested."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    return [text for item in value for text in _strings(item)] if isinstance(value, list) else []


def _responses_turn(item: dict[str, Any]) -> str | None:
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role in _INSTRUCTIONS or not _says_something(item.get("content")):
            return None
        return "user" if role == "user" else "assistant"
    if kind in ("function_call_output", "custom_tool_call_output"):
        return "user"
    return "assistant" if kind in ("function_call", "custom_tool_call", "reasoning") else None


def _says_something(content: object) -> bool:
    if isinstance(content, str):
        return bool(content)
    parts = content if isinstance(content, list) else []
    return any(
        isinstance(part, dict) and (part.get("text") or part.get("type") == "input_image")
        for part in parts
    )


def _cursor_of_models(case: AnyCase) -> bool:
    """/v1/models pages from a model of its list (api/routes/models.py `_page`): the list
    comes from the upstream at run time, so the document cannot enumerate it."""
    return case.path == "/v1/models" and bool({"before_id", "after_id"} & set(case.query or {}))


def _arguments_not_json(case: AnyCase) -> bool:
    """A chat tool call's `arguments` (and a Responses function_call item's) are blank or a JSON
    object in a string, storable as the rest (api/openai/chat_request.py `_arguments` turns them
    into a tool_use block's input; api/responses/translation.py the same); a
    schema can say a string holds JSON only as an annotation, which no validator checks."""
    body: Any = case.body  # JSON as generated: checked piece by piece
    if case.path == _RESPONSES and isinstance(body, dict):  # its function_call items, the same
        items = body.get("input")
        calls = items if isinstance(items, list) else []
        return not all(
            _json_object(call["arguments"])
            for call in calls
            if isinstance(call, dict) and call.get("type") == "function_call"
        )
    if case.path != _CHAT or not isinstance(body, dict):
        return False
    calls = [
        call
        for message in body.get("messages") or []
        if isinstance(message, dict)
        for call in message.get("tool_calls") or []
    ]
    return not all(_json_object(call["function"]["arguments"]) for call in calls)


def _json_object(text: str) -> bool:
    if not text.strip():
        return True
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return isinstance(parsed, dict) and not _not_storable_as_json(parsed)


def _named_tool(choice: object) -> str | None:
    if not isinstance(choice, dict):
        return None
    if choice.get("type") == "tool":  # Anthropic's {"type": "tool", "name": ...}
        return str(choice.get("name"))
    function = choice.get("function")  # OpenAI's {"type": "function", "function": {"name"}}
    if choice.get("type") == "function" and isinstance(function, dict):
        return str(function.get("name"))
    return None


def _tool_name(tool: dict[str, Any]) -> str | None:
    function = tool.get("function")
    name = function.get("name") if isinstance(function, dict) else tool.get("name")
    return str(name) if name is not None else None


def _integral_as_int(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and INT_MIN <= value <= INT_MAX:
        return int(value)
    if isinstance(value, dict):
        return {key: _integral_as_int(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral_as_int(item) for item in value]
    return value
