"""Lua scripts called by name on a real Redis (shared/broker/lua_script.py)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.broker.lua_script import LuaLibrary, LuaScript

SET_AND_ECHO = LuaScript.parse(
    "set_and_echo.lua",
    """-- Set a key, answer with what it was given.
-- KEYS: target
-- ARGV: value
--       extras...
redis.call('SET', KEY.target, ARG.value)
return {KEY.target, ARG.value, #ARG.extras, ARG.extras[1] or ''}
""",
)


async def test_a_script_gets_its_keys_and_arguments_by_name(redis: Redis) -> None:
    run = SET_AND_ECHO.bind(redis)
    answer = await run(extras=["x", "y"], value="v", target="k")
    assert answer == [b"k", b"v", 2, b"x"]
    assert await redis.get("k") == b"v"


async def test_a_call_missing_a_name_sends_nothing(redis: Redis) -> None:
    run = SET_AND_ECHO.bind(redis)
    with pytest.raises(TypeError, match="value"):
        await run(target="k", extras=[])
    assert await redis.exists("k") == 0


async def test_a_script_redis_forgot_is_sent_again(redis: Redis) -> None:
    run = SET_AND_ECHO.bind(redis)
    await run(target="k", value="1", extras=[])
    await redis.script_flush()
    assert (await run(target="k", value="2", extras=[]))[1] == b"2"


async def test_a_script_calls_the_functions_of_its_library(redis: Redis) -> None:
    library = LuaLibrary("double.lua", "local function double(x) return 2 * tonumber(x) end\n")
    script = LuaScript.parse("twice.lua", "-- ARGV: n\nreturn double(ARG.n)\n", uses=[library])
    assert await script.bind(redis)(n=21) == 42


async def test_a_redis_error_names_the_line_of_the_scripts_own_file(redis: Redis) -> None:
    script = LuaScript.parse("broken.lua", "-- ARGV: n\n\nreturn nil + ARG.n\n")
    with pytest.raises(ResponseError, match=r"user_script:3:"):
        await script.bind(redis)(n=1)
