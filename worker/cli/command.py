"""How a Messages request becomes one `claude -p` run: its argv, its environment, its stdin.

The conversation is replayed over stdin in stream-json, one line a message
(docs/measured-facts.md §2): every earlier user message is sent with `shouldQuery: false`
and acknowledged by the CLI before the next line; assistant messages are appended at once;
the final user message triggers the one upstream request. Nothing faster is faithful (§13:
unacknowledged lines reorder, a resumed session file moves the CLI's reminders), so a CLI
that answered stays for the next turn instead (worker/cli/resident.py), which then needs
only the new messages (`message_lines`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from shared.wire.messages import MessagesRequest
from worker.cli.cache_breakpoints import limit_breakpoints, without_final_breakpoint
from worker.cli.login import LOGIN_VARIABLES
from worker.cli.slash_text import as_plain_text
from worker.tools.client_tools import (
    initialize_fields,
    rename_for_cli,
    server_fields,
    tool_choice_instruction,
    tools_for_cli,
)

_PASSED_PREFIXES = ("ANTHROPIC_", "CLAUDE_", "DISABLE_", "LC_")
_PASSED_NAMES = frozenset(
    {"PATH", "TZ", "LANG", "LANGUAGE", "USER", "LOGNAME", "SHELL"}
    | {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"}
    | {"http_proxy", "https_proxy", "no_proxy", "all_proxy", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS"}
)

FORCED_ENV: Mapping[str, str] = {
    # Only the one Messages request may leave the process.
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    # The fleet decides about retries; the CLI makes exactly one request.
    "CLAUDE_CODE_MAX_RETRIES": "0",
    # A mid-stream upstream error must end in an error, not a silent second answer.
    "CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK": "1",
    # No placeholder tool, no remapped model ids.
    "ENABLE_TOOL_SEARCH": "false",
    "CLAUDE_CODE_DISABLE_LEGACY_MODEL_REMAP": "1",
    # Otherwise a "<total_tokens>N tokens left" reminder is appended to user turns and into
    # the client's tool_result content.
    "CLAUDE_CODE_TOTAL_TOKENS_REMINDER": "off",
    "CLAUDE_CODE_TOTAL_TOKENS_REMINDER_AFTER_USER_TURN": "false",
    # Otherwise `@/any/path` in a client's text attaches that file of the worker's host.
    "CLAUDE_CODE_DISABLE_FILE_MENTIONS": "1",
    # The model sees the client's conversation, never a summary the CLI wrote of it: a
    # resident CLI would otherwise compact a long one on its own (auto and idle compaction;
    # measured, docs/measured-facts.md "Long conversations").
    "DISABLE_COMPACT": "1",
    "DISABLE_AUTO_COMPACT": "1",
}


def cli_base_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of the worker's own environment the CLI may see: never CCFLEET_*, never a
    login (worker/cli/login.py adds the account's own), never HOME (each job has one)."""
    return {
        name: value
        for name, value in environ.items()
        if (name in _PASSED_NAMES or name.startswith(_PASSED_PREFIXES))
        and name not in LOGIN_VARIABLES
    }


@dataclass(frozen=True)
class SpawnShape:
    """What only a CLI's argv or environment can carry: a process started with one shape
    serves any request of that shape (system prompt and thinking go in after spawn)."""

    model: str
    max_tokens: int
    effort: str | None
    bare: bool


def spawn_shape(request: MessagesRequest, *, bare: bool) -> SpawnShape:
    effort = request.output_config.effort if request.output_config is not None else None
    return SpawnShape(model=request.model, max_tokens=request.max_tokens, effort=effort, bare=bare)


def cli_environment(
    base: Mapping[str, str],
    tmp_dir: str,
    shape: SpawnShape | None = None,
    *,
    home: str | None = None,
) -> dict[str, str]:
    """`home`: the job's private HOME; its `.claude` is the CLI's whole configuration."""
    env = {**base, **FORCED_ENV, "TMPDIR": tmp_dir}
    if home is not None:
        env.update(HOME=home, CLAUDE_CONFIG_DIR=f"{home}/.claude")
    if shape is not None:
        # The CLI takes its output token limit only from its environment.
        env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] = str(shape.max_tokens)
        # Not --model: argv is client text any local user reads with `ps` (measured: the
        # variable does what --model does, docs/measured-facts.md §7).
        env["ANTHROPIC_MODEL"] = shape.model
    return env


def uses_api_key(env: Mapping[str, str]) -> bool:
    """An API-key account (ANTHROPIC_API_KEY wins over an OAuth token when both are set)."""
    return bool(env.get("ANTHROPIC_API_KEY"))


def cli_argv(claude_bin: str, shape: SpawnShape) -> list[str]:
    """`bare` drops the CLI's own context reminders; the CLI allows it for API keys only.
    No client text goes on argv (any local user can read it there, and Linux caps one
    argument at 128 KiB): the system prompt and tools go in over stdin (`control_lines`)."""
    argv = [
        claude_bin,
        "-p",
        "--input-format", "stream-json",
        "--output-format", "stream-json",
        "--verbose",
        "--include-partial-messages",
        "--tools", "",
        "--no-session-persistence",
        "--max-turns", "1",
        "--strict-mcp-config",
        # No user, project or local settings: no hooks, env, CLAUDE.md, skills or plugins of
        # the host (measured: docs/measured-facts.md §7); --settings below still applies.
        "--setting-sources", "",
        "--disable-slash-commands",
    ]  # fmt: skip
    if shape.bare:
        argv.append("--bare")
    if shape.effort is not None:
        argv += ["--effort", shape.effort]
    return argv


def control_lines(request: MessagesRequest) -> list[bytes]:
    """Control requests that set up a started CLI for `request`, each to be answered by a
    `control_response` before the next line: the system prompt (`initialize`), the client's
    tools (worker/tools/client_tools.py) and the thinking budget. A `set_model` would cost an extra
    upstream request, so the model is in the environment (`cli_environment`)."""
    setup: dict[str, Any] = {"systemPrompt": _system_prompt(request)}
    tools = tools_for_cli(request)
    if tools:
        setup |= initialize_fields()
    lines = [_control_line("initialize", setup)]
    if tools:
        lines.append(_control_line("mcp_set_servers", server_fields()))
    thinking = request.thinking
    if thinking is None or thinking.type != "adaptive":  # adaptive is the CLI's own default
        # Not asked for means none, as on the API; the CLI would think by default.
        budget = (
            thinking.budget_tokens if thinking is not None and thinking.type == "enabled" else 0
        )
        lines.append(_control_line("set_max_thinking_tokens", {"max_thinking_tokens": budget}))
    return lines


def _control_line(subtype: str, fields: dict[str, Any]) -> bytes:
    body = {
        "type": "control_request",
        "request_id": subtype,
        "request": {"subtype": subtype, **fields},
    }
    return orjson.dumps(body) + b"\n"


def _system_prompt(request: MessagesRequest) -> str:
    parts = [request.system_text() or "", tool_choice_instruction(request) or ""]
    return "\n\n".join(part for part in parts if part)


@dataclass(frozen=True)
class StdinLine:
    """One stream-json line for the CLI; `awaits_ack` lines must be acknowledged first."""

    payload: bytes
    awaits_ack: bool


def cli_messages(request: MessagesRequest) -> list[dict[str, Any]]:
    """The client's conversation as the CLI gets it: tool names prefixed, breakpoints limited,
    no text that would read as a slash command."""
    tool_names = {tool.name for tool in request.tools or []}
    messages = limit_breakpoints(rename_for_cli(request.forwardable_messages(), tool_names))
    messages = [as_plain_text(m) if m["role"] == "user" else m for m in messages]
    return without_final_breakpoint(messages)


def stdin_lines(request: MessagesRequest) -> list[StdinLine]:
    """The client's conversation as stream-json lines, ending with the line that queries."""
    return message_lines(cli_messages(request), request.model)


def message_lines(messages: list[dict[str, Any]], model: str) -> list[StdinLine]:
    """`messages` (from `cli_messages`) as stream-json lines; the last one queries."""
    lines: list[StdinLine] = []
    for index, message in enumerate(messages):
        is_last = index == len(messages) - 1
        if message["role"] == "assistant":
            lines.append(StdinLine(_line("assistant", _stamped(message, model)), False))
        else:
            lines.append(StdinLine(_line("user", message, query=is_last), not is_last))
    return lines


def _stamped(message: dict[str, Any], model: str) -> dict[str, Any]:
    # Thinking blocks in replayed history survive only if the message names the request's model.
    return {**message, "model": model}


def _line(kind: str, message: dict[str, Any], *, query: bool = True) -> bytes:
    line: dict[str, Any] = {
        "type": kind,
        "message": message,
        "parent_tool_use_id": None,
        "session_id": "",
    }
    if kind == "user" and not query:
        line["shouldQuery"] = False
    return orjson.dumps(line) + b"\n"
