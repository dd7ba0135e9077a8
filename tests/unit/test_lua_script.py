"""Lua scripts declare their KEYS and ARGV by name (shared/broker/lua_script.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.broker.lua_script import LuaLibrary, LuaScript, LuaScriptError

REPO = Path(__file__).resolve().parents[2]

ECHO = """-- Echo what it was given.
-- KEYS: first second
-- ARGV: count
--       label values...
return {KEY.first, ARG.count, ARG.values}
"""


def test_a_header_declares_keys_then_argv_with_continuation_lines_and_a_rest() -> None:
    script = LuaScript.parse("echo.lua", ECHO)
    assert script.keys == ("first", "second")
    assert script.args == ("count", "label")
    assert script.rest == "values"


def test_values_are_arranged_in_declared_order_whatever_order_they_are_passed_in() -> None:
    script = LuaScript.parse("echo.lua", ECHO)
    keys, args = script.arrange(
        {"values": [1, 2], "label": "x", "second": "k2", "count": 3, "first": "k1"}
    )
    assert keys == ["k1", "k2"]
    assert args == [3, "x", 1, 2]


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"first": "a", "second": "b", "count": 1, "values": []}, "missing ['label']"),
        (
            {"first": "a", "second": "b", "count": 1, "label": "", "values": [], "extra": 1},
            "unknown ['extra']",
        ),
        ({"first": "a", "second": "b", "count": 1, "label": "", "values": "ab"}, "sequence"),
    ],
)
def test_a_missing_unknown_or_malformed_value_is_a_type_error(
    values: dict[str, object], complaint: str
) -> None:
    script = LuaScript.parse("echo.lua", ECHO)
    with pytest.raises(TypeError, match=complaint.replace("[", r"\[").replace("]", r"\]")):
        script.arrange(values)


def test_the_tables_go_on_the_first_line_so_line_numbers_stay_the_files() -> None:
    script = LuaScript.parse("echo.lua", ECHO)
    first, *others = script.source.splitlines()
    assert first.startswith("local KEY = {first = KEYS[1], second = KEYS[2]} local ARG = {")
    assert first.endswith("-- Echo what it was given.")
    assert "values = {unpack(ARGV, 3)}" in first
    assert others == ECHO.splitlines()[1:]


def test_a_library_goes_in_front_of_the_script_that_uses_it() -> None:
    library = LuaLibrary("double.lua", "local function double(x) return 2 * x end\n")
    script = LuaScript.parse("echo.lua", ECHO, uses=[library])
    assert script.source.startswith(library.source)


@pytest.mark.parametrize(
    "header",
    [
        "-- KEYS: end\n",  # a Lua keyword: KEY.end does not parse
        "-- KEYS: a-b\n",
        "-- KEYS: same\n-- ARGV: same\n",
        "-- KEYS: a\n-- KEYS: b\n",
    ],
)
def test_a_name_lua_cannot_use_or_a_repeated_one_is_refused(header: str) -> None:
    with pytest.raises(LuaScriptError):
        LuaScript.parse("bad.lua", header + "return 1\n")


def test_the_header_ends_at_the_first_line_of_code() -> None:
    script = LuaScript.parse("late.lua", "-- KEYS: a\nreturn 1\n-- ARGV: b\n")
    assert (script.keys, script.args) == (("a",), ())


def test_every_lua_file_in_the_code_base_parses() -> None:
    found = [
        path
        for package in ("api", "worker", "shared")
        for path in sorted((REPO / package).rglob("*.lua"))
    ]
    assert found
    for path in found:
        LuaScript.parse(path.name, path.read_text())
