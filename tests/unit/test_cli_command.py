"""How a Messages request becomes one CLI run: environment, argv and stdin lines."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from shared.wire.messages import MessagesRequest
from worker.cli.command import (
    FORCED_ENV,
    cli_argv,
    cli_base_environment,
    cli_environment,
    control_lines,
    spawn_shape,
    stdin_lines,
    uses_api_key,
)

KEPT = {
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:9999",
    "DISABLE_AUTOUPDATER": "1",
    "PATH": "/usr/local/bin:/usr/bin",
    "TZ": "UTC",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "LC_CTYPE": "C.UTF-8",
    "HTTPS_PROXY": "http://proxy:3128",
    "HTTP_PROXY": "http://proxy:3128",
    "NO_PROXY": "localhost",
    "https_proxy": "http://proxy:3128",
    "no_proxy": "localhost",
}
DROPPED = {
    "CCFLEET_REDIS_URL": "redis://secret@redis:6379",
    "CCFLEET_CLAUDE_BIN": "/opt/claude",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
    "PYTHONPATH": "/work/main",
    "VIRTUAL_ENV": "/work/main/.venv",
    "NODE_OPTIONS": "--inspect",
    "TMPDIR": "/shared/tmp",
    # Logins: the worker adds its own account's (worker/cli/login.py); each job has a HOME.
    "ANTHROPIC_API_KEY": "sk-ant-api03-secret",
    "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-token",
    "ANTHROPIC_AUTH_TOKEN": "bearer-secret",
    "CLAUDE_CONFIG_DIR": "/accounts/a1",
    "HOME": "/home/worker",
}


def request(**fields: Any) -> MessagesRequest:
    body: dict[str, Any] = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }
    body.update(fields)
    return MessagesRequest.model_validate(body)


def option(argv: list[str], name: str) -> str:
    assert argv.count(name) == 1, argv
    return argv[argv.index(name) + 1]


def parsed(payload: bytes) -> dict[str, Any]:
    assert payload.endswith(b"\n")
    assert payload.count(b"\n") == 1, "one stream-json line"
    line: dict[str, Any] = orjson.loads(payload)
    return line


def test_base_environment_keeps_what_the_cli_needs() -> None:
    assert cli_base_environment(KEPT) == KEPT


def test_base_environment_drops_ccfleet_settings_and_everything_else() -> None:
    assert cli_base_environment({**KEPT, **DROPPED}) == KEPT


def test_cli_environment_forces_the_fixed_settings_over_the_base() -> None:
    base = {**KEPT, "CLAUDE_CODE_MAX_RETRIES": "5", "DISABLE_TELEMETRY": "0"}
    env = cli_environment(base, "/jobs/job_1/tmp")
    for name, value in FORCED_ENV.items():
        assert env[name] == value
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "0"
    assert env["CLAUDE_CODE_DISABLE_FILE_MENTIONS"] == "1"
    assert env["ANTHROPIC_BASE_URL"] == KEPT["ANTHROPIC_BASE_URL"]


def test_cli_environment_points_tmpdir_home_and_config_at_the_job_directory() -> None:
    base = {**KEPT, "TMPDIR": "/shared/tmp", "HOME": "/w", "CLAUDE_CONFIG_DIR": "/w"}
    env = cli_environment(base, "/jobs/job_1/tmp", home="/jobs/job_1/home")
    assert env["TMPDIR"] == "/jobs/job_1/tmp"
    assert env["HOME"] == "/jobs/job_1/home"
    assert env["CLAUDE_CONFIG_DIR"] == "/jobs/job_1/home/.claude"


def test_an_api_key_account_is_told_apart_from_an_oauth_one() -> None:
    assert uses_api_key({"ANTHROPIC_API_KEY": "sk-ant-api03-x", "CLAUDE_CODE_OAUTH_TOKEN": "t"})
    assert not uses_api_key({"CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-x"})
    assert not uses_api_key({"ANTHROPIC_API_KEY": ""})


def argv_for(req: MessagesRequest, *, bare: bool = False) -> list[str]:
    return cli_argv("claude", spawn_shape(req, bare=bare))


def controls(req: MessagesRequest) -> dict[str, dict[str, Any]]:
    """The control requests by subtype; each is one stream-json line."""
    lines = [parsed(line) for line in control_lines(req)]
    assert all(line["type"] == "control_request" for line in lines)
    return {line["request"]["subtype"]: line["request"] for line in lines}


def test_argv_runs_the_given_binary_and_the_environment_names_the_model() -> None:
    shape = spawn_shape(request(model="claude-opus-5-5"), bare=False)
    argv = cli_argv("/opt/claude/bin/claude", shape)
    assert argv[0] == "/opt/claude/bin/claude"
    assert not [arg for arg in argv if "opus" in arg], "no client text on argv"
    assert cli_environment(KEPT, "/tmp/x", shape)["ANTHROPIC_MODEL"] == "claude-opus-5-5"
    assert option(argv, "--input-format") == "stream-json"
    assert option(argv, "--output-format") == "stream-json"


def test_argv_disables_every_tool() -> None:
    assert option(argv_for(request()), "--tools") == ""


def test_no_client_text_goes_on_argv() -> None:
    secret = "You are the canary 7f3a."
    req = request(system=secret, messages=[{"role": "user", "content": "canary 7f3a"}])
    assert not any("7f3a" in arg for arg in argv_for(req))
    assert "--system-prompt" not in argv_for(req)


def test_the_system_prompt_joins_the_text_blocks_in_the_initialize_request() -> None:
    system = [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Be kind."}]
    assert controls(request(system=system))["initialize"]["systemPrompt"] == (
        "You are terse.\n\nBe kind."
    )


def test_the_system_prompt_is_the_string_given() -> None:
    initialize = controls(request(system="You are terse."))["initialize"]
    assert initialize["systemPrompt"] == "You are terse."


def test_the_system_prompt_is_empty_without_a_system() -> None:
    assert controls(request())["initialize"]["systemPrompt"] == ""


@pytest.mark.parametrize(
    ("thinking", "budget"),
    [
        (None, 0),
        ({"type": "disabled"}, 0),
        ({"type": "enabled", "budget_tokens": 2048}, 2048),
        ({"type": "adaptive"}, None),
    ],
)
def test_the_thinking_budget_is_set_after_spawn_except_adaptive(
    thinking: dict[str, Any] | None, budget: int | None
) -> None:
    req = request(max_tokens=4096, **({"thinking": thinking} if thinking else {}))
    found = controls(req).get("set_max_thinking_tokens")
    assert (found["max_thinking_tokens"] if found else None) == budget


def test_requests_that_differ_only_in_text_and_thinking_share_a_spawn_shape() -> None:
    one = request(system="A", thinking={"type": "enabled", "budget_tokens": 2048}, max_tokens=4096)
    two = request(system="B", messages=[{"role": "user", "content": "other"}], max_tokens=4096)
    assert spawn_shape(one, bare=False) == spawn_shape(two, bare=False)
    assert spawn_shape(one, bare=False) != spawn_shape(request(max_tokens=10), bare=False)


def test_the_output_token_limit_goes_in_the_environment() -> None:
    shape = spawn_shape(request(max_tokens=777), bare=False)
    assert cli_environment({}, "/tmp/x", shape)["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "777"


@pytest.mark.parametrize("bare", [True, False])
def test_argv_has_bare_only_when_asked(bare: bool) -> None:
    assert ("--bare" in argv_for(request(), bare=bare)) is bare


@pytest.mark.parametrize("bare", [True, False])
def test_argv_loads_no_setting_source_and_no_slash_command(bare: bool) -> None:
    argv = argv_for(request(), bare=bare)
    assert option(argv, "--setting-sources") == ""
    assert "--disable-slash-commands" in argv


IMAGE = {
    "type": "image",
    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
}
TOOL_RESULT = {
    "type": "tool_result",
    "tool_use_id": "toolu_1",
    "is_error": False,
    "content": [{"type": "text", "text": "21 C"}, IMAGE],
}
CONVERSATION: list[dict[str, Any]] = [
    {"role": "user", "content": [{"type": "text", "text": "What is this?"}, IMAGE]},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "A picture.", "signature": "EqQBsig=="},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
        ],
    },
    {"role": "user", "content": [TOOL_RESULT]},
    {"role": "assistant", "content": "It is 21 C."},
    {"role": "user", "content": "Thanks!"},
]


def conversation_lines() -> list[tuple[dict[str, Any], bool]]:
    lines = stdin_lines(request(model="claude-sonnet-5-5", messages=CONVERSATION))
    return [(parsed(line.payload), line.awaits_ack) for line in lines]


def test_one_line_per_message_in_order() -> None:
    lines = conversation_lines()
    assert [line["type"] for line, _ in lines] == [m["role"] for m in CONVERSATION]
    for line, _ in lines:
        assert line["parent_tool_use_id"] is None
        assert line["session_id"] == ""


def test_user_lines_before_the_last_do_not_query_and_await_an_ack() -> None:
    earlier_user_lines = [
        entry for entry in conversation_lines()[:-1] if entry[0]["type"] == "user"
    ]
    assert len(earlier_user_lines) == 2
    for line, awaits_ack in earlier_user_lines:
        assert line["shouldQuery"] is False
        assert "shouldQuery" not in line["message"]
        assert awaits_ack is True


def test_assistant_lines_carry_the_request_model_and_await_no_ack() -> None:
    assistant_lines = [entry for entry in conversation_lines() if entry[0]["type"] == "assistant"]
    assert len(assistant_lines) == 2
    for line, awaits_ack in assistant_lines:
        assert line["message"]["model"] == "claude-sonnet-5-5"
        assert "shouldQuery" not in line
        assert awaits_ack is False


def test_the_last_user_line_queries() -> None:
    line, awaits_ack = conversation_lines()[-1]
    assert line["type"] == "user"
    assert "shouldQuery" not in line
    assert awaits_ack is False
    assert line["message"] == {"role": "user", "content": "Thanks!"}


def test_a_single_user_message_is_one_querying_line() -> None:
    [line] = stdin_lines(request())
    assert parsed(line.payload) == {
        "type": "user",
        "message": {"role": "user", "content": "hi"},
        "parent_tool_use_id": None,
        "session_id": "",
    }
    assert line.awaits_ack is False


def test_message_content_passes_unchanged() -> None:
    contents = [line["message"]["content"] for line, _ in conversation_lines()]
    assert contents == [message["content"] for message in CONVERSATION]


def _sent_contents(messages: list[dict[str, Any]]) -> list[Any]:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": messages}
    lines = stdin_lines(MessagesRequest.model_validate(body))
    return [parsed(line.payload)["message"]["content"] for line in lines]


def test_a_text_ending_a_user_turn_with_a_slash_is_split_after_the_slash() -> None:
    cached = {"type": "ephemeral"}
    contents = _sent_contents(
        [
            {"role": "user", "content": "/heapdump"},
            {"role": "assistant", "content": "/not-a-user-turn"},
            {
                "role": "user",
                "content": [IMAGE, {"type": "text", "text": "/doctor x", "cache_control": cached}],
            },
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "/a"}]},
        ]
    )
    assert contents == [
        [{"type": "text", "text": "/"}, {"type": "text", "text": "heapdump"}],
        "/not-a-user-turn",
        [
            IMAGE,
            {"type": "text", "text": "/"},
            {"type": "text", "text": "doctor x", "cache_control": cached},
        ],
        "ok",
        [{"type": "text", "text": "/"}, {"type": "text", "text": "a"}],
    ]


def test_the_clients_breakpoint_on_the_last_block_is_left_to_the_cli_and_earlier_ones_stay() -> (
    None
):
    # The CLI puts its own breakpoint there, replacing the client's (measured): removing it
    # changes nothing upstream, and a resident conversation stays what the client sends back.
    cached = {"type": "ephemeral"}
    contents = _sent_contents(
        [
            {"role": "user", "content": [{"type": "text", "text": "a", "cache_control": cached}]},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "b", "cache_control": cached}]},
        ]
    )
    assert contents == [
        [{"type": "text", "text": "a"}],  # one client breakpoint is kept: the last, dropped below
        "ok",
        [{"type": "text", "text": "b"}],
    ]


def test_texts_the_cli_does_not_read_as_commands_pass_unchanged() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": " /heapdump"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "/heapdump"}, IMAGE]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "/"},
    ]
    assert _sent_contents(messages) == [m["content"] for m in messages]
