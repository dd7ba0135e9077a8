"""Lua scripts run in Redis: each a `.lua` file beside the module that runs it, taking its KEYS
and ARGV by name.

A script's file opens with comments declaring what it takes, in order:

    -- KEYS: journal record
    -- ARGV: seq chunk max_chunks
    --       attempt fields...

A declaration goes on over the lines after it that start with `--` and two spaces or more; a
last ARGV name ending in `...` takes any number of values (a sequence). In the script the
values are fields of two tables, `KEY.journal`, `ARG.seq` (`ARG.fields` a table); the caller
passes each by name, `await script.bind(redis)(journal=..., seq=...)`, and a missing or unknown
name is a TypeError before anything is sent.

A library (`LuaLibrary`) is a file of local functions; a script using one gets its text in
front of its own. The tables are declared on the script's first line (a comment), so without
a library a line number in a Redis error is the file's.

Files are read once, when the module declaring the script is imported: a file missing from
an installation stops the process at start, not at its first request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

LuaValue = str | bytes | int | float
"""One KEYS or ARGV value, as redis-py encodes it."""

_DECLARATION = re.compile(r"^--\s*(KEYS|ARGV):(.*)$")
_CONTINUATION = re.compile(r"^--\s{2,}(\S.*)$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LUA_KEYWORDS = frozenset(
    {"and", "break", "do", "else", "elseif", "end", "false", "for", "function", "if", "in"}
    | {"local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"}
)


class LuaScriptError(ValueError):
    """A `.lua` file whose declarations cannot be used (a bad or repeated name)."""


@dataclass(frozen=True)
class LuaLibrary:
    """Local Lua functions that scripts share (`LuaScript.beside(..., uses=...)`)."""

    name: str
    source: str

    @classmethod
    def beside(cls, module_file: str, file_name: str) -> LuaLibrary:
        path = Path(module_file).with_name(file_name)
        return cls(name=file_name, source=path.read_text())


@dataclass(frozen=True)
class LuaScript:
    """A script with named KEYS and ARGV: `bind` it to a Redis client, call that by name."""

    name: str
    keys: tuple[str, ...]
    args: tuple[str, ...]
    rest: str | None
    """The ARGV name taking any number of values, after `args`; None if there is none."""
    source: str
    """What Redis runs: the libraries, then the script, its tables declared on line 1."""

    @classmethod
    def beside(
        cls, module_file: str, file_name: str, *, uses: Sequence[LuaLibrary] = ()
    ) -> LuaScript:
        """The script in `file_name`, in the folder of `module_file` (the caller's `__file__`)."""
        path = Path(module_file).with_name(file_name)
        return cls.parse(file_name, path.read_text(), uses=uses)

    @classmethod
    def parse(cls, name: str, text: str, *, uses: Sequence[LuaLibrary] = ()) -> LuaScript:
        declared = _declarations(name, text)
        keys = tuple(declared.get("KEYS", []))
        args = declared.get("ARGV", [])
        rest = args.pop()[:-3] if args and args[-1].endswith("...") else None
        names = [*keys, *args, *([rest] if rest else [])]
        _check_names(name, names)
        prologue = _prologue(keys, args, rest)
        libraries = "".join(library.source.rstrip("\n") + "\n" for library in uses)
        return cls(name, keys, tuple(args), rest, libraries + prologue + text)

    def arrange(self, values: dict[str, Any]) -> tuple[list[str | bytes], list[LuaValue]]:
        """KEYS and ARGV in declared order from values by name; TypeError if any is missing
        or unknown."""
        wanted = {*self.keys, *self.args, *([self.rest] if self.rest else [])}
        missing = sorted(wanted - values.keys())
        unknown = sorted(values.keys() - wanted)
        if missing or unknown:
            raise TypeError(f"{self.name}: missing {missing or '-'}, unknown {unknown or '-'}")
        keys = [values[name] for name in self.keys]
        if not all(isinstance(key, str | bytes) for key in keys):
            raise TypeError(f"{self.name}: a key name is a str or bytes")
        args = [values[name] for name in self.args]
        if self.rest is not None:
            rest = values[self.rest]
            if isinstance(rest, str | bytes) or not isinstance(rest, Iterable):
                raise TypeError(f"{self.name}: {self.rest} takes a sequence of values")
            args.extend(rest)
        return keys, args

    def bind(self, redis: Redis) -> BoundLuaScript:
        """The script on `redis`: sent once per server (EVALSHA), resent if Redis lost it."""
        return BoundLuaScript(self, redis.register_script(self.source))


class BoundLuaScript:
    """A `LuaScript` on one Redis client: `await bound(name=value, ...)`."""

    def __init__(self, script: LuaScript, registered: AsyncScript) -> None:
        self.script = script
        self._registered = registered

    async def __call__(self, **values: LuaValue | Sequence[LuaValue]) -> Any:
        keys, args = self.script.arrange(values)
        return await self._registered(keys=keys, args=args)

    async def many(self, calls: Sequence[dict[str, Any]]) -> list[Any]:
        """The script run once for each set of values, in one pipeline: each run's reply, in
        order (the first error raises). One round trip, two the first time a server sees the
        script (every run then fails unrun, NOSCRIPT: it is loaded and the pipeline sent again)."""
        if len(calls) <= 1:
            return [await self(**values) for values in calls]
        try:
            return await self._pipelined(calls)
        except NoScriptError:
            await self._registered.registered_client.script_load(self.script.source)
            return await self._pipelined(calls)

    async def _pipelined(self, calls: Sequence[dict[str, Any]]) -> list[Any]:
        client = self._registered.registered_client
        async with client.pipeline(transaction=False) as pipe:
            for values in calls:
                keys, args = self.script.arrange(values)
                pipe.execute_command("EVALSHA", self._registered.sha, len(keys), *keys, *args)
            return await pipe.execute()


def _declarations(name: str, text: str) -> dict[str, list[str]]:
    """The names of the header's `-- KEYS:` and `-- ARGV:` lines (and their continuations)."""
    declared: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if not line.startswith("--"):
            break  # the header ends at the first line of code
        if found := _DECLARATION.match(line):
            if found.group(1) in declared:
                raise LuaScriptError(f"{name}: {found.group(1)} declared twice")
            current = declared[found.group(1)] = found.group(2).split()
        elif current is not None and (more := _CONTINUATION.match(line)):
            current.extend(more.group(1).split())
        else:
            current = None
    return declared


def _check_names(script: str, names: list[str]) -> None:
    for name in names:
        if not _NAME.match(name) or name in _LUA_KEYWORDS:
            raise LuaScriptError(f"{script}: {name!r} is not a usable Lua name")
    if len(set(names)) < len(names):
        raise LuaScriptError(f"{script}: a name is declared twice in {names}")


def _prologue(keys: tuple[str, ...], args: list[str], rest: str | None) -> str:
    """`KEY` and `ARG` by name, on one line (the script's first, a comment, follows)."""
    key_fields = [f"{name} = KEYS[{i}]" for i, name in enumerate(keys, 1)]
    arg_fields = [f"{name} = ARGV[{i}]" for i, name in enumerate(args, 1)]
    if rest is not None:
        arg_fields.append(f"{rest} = {{unpack(ARGV, {len(args) + 1})}}")
    return f"local KEY = {{{', '.join(key_fields)}}} local ARG = {{{', '.join(arg_fields)}}} "
