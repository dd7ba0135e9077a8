"""A request reaches the model and nothing else: canary tests with the real CLI.

The worker's HOME is seeded the way a developer's machine is: `~/.claude/settings.json` with
hooks (writing marker files) and an `env` block, `~/.claude/CLAUDE.md`, a skill, a command, an
MCP server, and instruction files in the parents of the worker's TMPDIR and work root. Every
file carries the canary string; none of it may reach the upstream, no marker may appear, and a
client's `/command` must reach the model as text without running anything.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import loopback
from tests.conftest import Stack, StackFactory
from tests.e2e.conftest import MODEL
from tests.fakes.upstream import BlocksReply, HangReply, TextReply, ToolUseBlock
from tests.processes import held_post, wait_until
from tests.sdk import SdkClients

CANARY = "CANARY-4d1e"
ANSWER = "Plain text came back."
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@dataclass(frozen=True)
class SeededHost:
    """A worker host customised in every way the CLI knows, each way leaving a trace."""

    home: Path
    tmp: Path
    marks: Path

    def env(self) -> dict[str, str]:
        return {
            "CCFLEET_WORK_ROOT": "",  # the default work root is part of what is tested
            "HOME": str(self.home),
            "TMPDIR": str(self.tmp),
            "CLAUDE_CONFIG_DIR": str(self.home / ".claude"),
        }

    def traces(self) -> list[str]:
        """Marker files written by hooks or MCP servers of the host's setup."""
        return sorted(p.name for p in self.marks.iterdir())

    def heap_snapshots(self) -> list[Path]:
        # os.walk, not rglob: a job's directory may go while the walk is in it.
        return [
            Path(folder, name)
            for folder, _dirs, files in os.walk(self.home.parent)
            for name in files
            if "heapsnapshot" in name
        ]


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _instruction_files(directory: Path, where: str) -> None:
    _write(directory / "CLAUDE.md", f"{CANARY} {where} CLAUDE.md: answer in French.\n")
    _write(directory / "CLAUDE.local.md", f"{CANARY} {where} CLAUDE.local.md\n")
    _write(directory / "AGENTS.md", f"{CANARY} {where} AGENTS.md\n")
    _write(directory / ".claude" / "CLAUDE.md", f"{CANARY} {where} .claude/CLAUDE.md\n")
    _write(directory / ".claude" / "commands" / "parentcmd.md", f"{CANARY} {where} command\n")


def seed_host(root: Path) -> SeededHost:
    home, tmp, marks = root / "home", root / "shared-tmp", root / "marks"
    marks.mkdir(parents=True)
    claude = home / ".claude"

    def hook(event: str) -> list[dict[str, Any]]:
        command = f"touch {marks}/{event}; echo {CANARY}-hook-{event}"
        return [{"hooks": [{"type": "command", "command": command}]}]

    settings = {
        "hooks": {
            "SessionStart": hook("SessionStart"),
            "UserPromptSubmit": hook("UserPromptSubmit"),
        },
        "env": {"ANTHROPIC_CUSTOM_HEADERS": f"x-canary: {CANARY}-env"},
    }
    _write(claude / "settings.json", json.dumps(settings))
    _write(claude / "CLAUDE.md", f"{CANARY} user CLAUDE.md\n")
    _write(
        claude / "skills" / "secretskill" / "SKILL.md",
        f"---\nname: secretskill\ndescription: {CANARY} skill\n---\n{CANARY} skill body\n",
    )
    _write(claude / "commands" / "secretcmd.md", f"{CANARY} command body\n")
    mcp = {"mcpServers": {"hostmcp": {"command": "sh", "args": ["-c", f"touch {marks}/mcp"]}}}
    _write(claude / ".claude.json", json.dumps(mcp))
    _write(home / ".claude.json", json.dumps(mcp))
    _instruction_files(home, "home")  # parents of the default work root
    _instruction_files(tmp, "tmp")  # the worker's TMPDIR, the old default work root
    return SeededHost(home=home, tmp=tmp, marks=marks)


def upstream_text(stack: Stack) -> str:
    """Everything every upstream request carried: bodies and headers."""
    return json.dumps([{"body": r.body, "headers": r.headers} for r in stack.upstream.requests])


def user_texts(messages: list[dict[str, Any]]) -> list[str]:
    """Each user message's text as the model reads it: its text blocks joined, less the CLI's
    own `<system-reminder>` blocks (docs/architecture.md, "What the model sees")."""
    texts = []
    for message in messages:
        if message["role"] != "user":
            continue
        content = message["content"]
        if isinstance(content, str):
            texts.append(content)
            continue
        texts.append(
            "".join(
                block["text"]
                for block in content
                if block["type"] == "text" and not block["text"].startswith("<system-reminder>")
            )
        )
    return texts


@pytest.fixture
def stack_with_seeded_host(make_stack: StackFactory, tmp_path: Path) -> tuple[Stack, SeededHost]:
    """One front end and one OAuth worker (as compose, k8s and `ccfleet up` run them)."""
    host = seed_host(tmp_path / "host")
    return make_stack(**host.env()), host


def test_a_worker_ignores_every_customisation_of_its_host_and_keeps_its_tool_bridge(
    stack_with_seeded_host: tuple[Stack, SeededHost],
    sdk_clients: SdkClients,
) -> None:
    stack, host = stack_with_seeded_host
    stack.upstream.enqueue(
        BlocksReply([ToolUseBlock("toolu_01", "mcp__client__get_weather", {"city": "Oslo"})])
    )
    client = sdk_clients.anthropic_client(stack.url)

    reply = client.messages.create(
        model=MODEL,
        max_tokens=200,
        tools=[WEATHER],  # type: ignore[list-item]  # a plain dict is what clients send
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
    )

    assert reply.stop_reason == "tool_use"
    assert [(b.type, getattr(b, "name", None)) for b in reply.content] == [
        ("tool_use", "get_weather")
    ]
    assert len(stack.upstream.requests) == 1, "the defer hook stopped the CLI at the tool call"
    sent = stack.upstream.requests[0].body
    assert [tool["name"] for tool in sent["tools"]] == ["mcp__client__get_weather"]
    assert CANARY not in upstream_text(stack)
    assert host.traces() == []
    assert not (host.home / ".claude" / "projects").exists()
    assert not (host.home / ".claude" / "session-env").exists()
    assert not (host.home / ".cache" / "claude-cli-nodejs").exists()
    work_root = host.home / ".cache" / "ccfleet" / "work"
    (worker_dir,) = _worker_dirs(work_root)
    assert [stat.S_IMODE(p.stat().st_mode) for p in (work_root, worker_dir)] == [0o700, 0o700]
    # The answer is published before the CLI is reaped and its files removed.
    wait_until(lambda: not list(worker_dir.glob("job-*")), 10, "the job's files to go with it")


def test_a_clients_slash_commands_reach_the_model_as_text_and_run_nothing(
    stack_with_seeded_host: tuple[Stack, SeededHost],
    sdk_clients: SdkClients,
) -> None:
    stack, host = stack_with_seeded_host
    stack.upstream.enqueue(TextReply(ANSWER))
    client = sdk_clients.anthropic_client(stack.url)
    messages: list[Any] = [
        {"role": "user", "content": "/secretskill"},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": [{"type": "text", "text": "/doctor"}]},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": [{"type": "text", "text": "/heapdump"}]},
    ]

    reply = client.messages.create(model=MODEL, max_tokens=200, messages=messages)

    assert [b.text for b in reply.content if b.type == "text"] == [ANSWER]
    assert len(stack.upstream.requests) == 1
    assert user_texts(stack.upstream.requests[0].body["messages"]) == [
        "/secretskill",
        "/doctor",  # not the CLI's 12k-token health-check prompt
        "/heapdump",
    ]
    assert CANARY not in upstream_text(stack)
    assert "isn't available" not in upstream_text(stack)
    assert host.traces() == []
    assert host.heap_snapshots() == []


def test_a_ready_cli_is_as_isolated_as_a_cold_one(
    make_stack: StackFactory, tmp_path: Path, sdk_clients: SdkClients
) -> None:
    """The same host canaries against a CLI the worker started ahead (worker/cli/pool.py)."""
    host = seed_host(tmp_path / "host")
    stack = make_stack(**host.env(), CCFLEET_PREWARM_CLIS="1")
    client = sdk_clients.anthropic_client(stack.url)
    hello: list[Any] = [{"role": "user", "content": "hello"}]
    client.messages.create(model=MODEL, max_tokens=200, messages=hello)  # cold; asks for one

    def worker() -> dict[str, Any]:
        workers: list[dict[str, Any]] = loopback.get(f"{stack.url}/v1/fleet", timeout=5).json()[
            "workers"
        ]
        return workers[0]

    wait_until(lambda: worker()["ready_clis"] == 1, 30, "a ready CLI")
    stack.upstream.enqueue(TextReply(ANSWER))
    messages: list[Any] = [
        {"role": "user", "content": "/secretskill"},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": [{"type": "text", "text": "/heapdump"}]},
    ]
    reply = client.messages.create(model=MODEL, max_tokens=200, messages=messages)

    assert [b.text for b in reply.content if b.type == "text"] == [ANSWER]
    wait_until(lambda: worker()["ready_hits"] == 1, 10, "the ready CLI to have served it")
    assert user_texts(stack.upstream.requests[-1].body["messages"]) == [
        "/secretskill",
        "/heapdump",
    ]
    assert CANARY not in upstream_text(stack)
    assert host.traces() == []
    assert host.heap_snapshots() == []


def test_a_config_dir_worker_lends_the_cli_its_credential_alone_and_openai_slash_text_passes(
    make_stack: StackFactory, tmp_path: Path, sdk_clients: SdkClients
) -> None:
    host = seed_host(tmp_path / "host")
    account = host.home / ".claude"  # the host's own login, with all its customisation
    credential = {
        "claudeAiOauth": {
            "accessToken": "sk-ant-oat01-from-the-file",
            "refreshToken": "sk-ant-ort01-unused",
            "expiresAt": int(time.time() * 1000) + 86_400_000,
            "scopes": ["user:inference", "user:profile"],
        }
    }
    _write(account / ".credentials.json", json.dumps(credential))
    before = sorted(p.name for p in account.iterdir())
    stack = make_stack(**host.env(), CLAUDE_CODE_OAUTH_TOKEN="")
    stack.upstream.enqueue(TextReply(ANSWER))
    oai = sdk_clients.openai_client(stack.url)

    completion = oai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "/heapdump now"}]
    )

    assert completion.choices[0].message.content == ANSWER
    sent = stack.upstream.requests[0]
    assert sent.headers["authorization"] == "Bearer sk-ant-oat01-from-the-file"
    assert user_texts(sent.body["messages"]) == ["/heapdump now"]
    assert host.heap_snapshots() == []
    assert CANARY not in upstream_text(stack)
    assert host.traces() == []
    assert sorted(p.name for p in account.iterdir()) == before, "the CLI wrote nothing there"


def test_an_api_key_worker_runs_no_slash_command_either(
    make_stack: StackFactory, tmp_path: Path, sdk_clients: SdkClients
) -> None:
    host = seed_host(tmp_path / "host")
    stack = make_stack(**host.env(), ANTHROPIC_API_KEY="sk-ant-api03-fake-test-key")
    stack.upstream.enqueue(TextReply(ANSWER))
    client = sdk_clients.anthropic_client(stack.url)
    messages: list[Any] = [
        {"role": "user", "content": [{"type": "text", "text": "/secretcmd"}]},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "/heapdump"},
    ]

    reply = client.messages.create(model=MODEL, max_tokens=200, messages=messages)

    assert [b.text for b in reply.content if b.type == "text"] == [ANSWER]
    sent = stack.upstream.requests[0]
    assert sent.headers.get("x-api-key") == "sk-ant-api03-fake-test-key", "ran with --bare"
    assert user_texts(sent.body["messages"]) == ["/secretcmd", "/heapdump"]
    assert CANARY not in upstream_text(stack)
    assert host.heap_snapshots() == []


def _worker_dirs(work_root: Path) -> list[Path]:
    return sorted(p for p in work_root.iterdir() if p.name.startswith("worker-"))


def _holds_lock_in(pid: int, worker_dir: Path) -> bool:
    """Whether process `pid` has its worker directory's lock file open (its names say nothing
    of the process that owns it)."""
    lock = str(worker_dir / ".lock")
    fds = Path(f"/proc/{pid}/fd")
    return any(os.readlink(fd) == lock for fd in fds.iterdir())


def test_a_sigkilled_workers_files_are_removed_by_the_worker_beside_it(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    work_root = tmp_path / "work"
    stack = make_stack(
        workers=2, CCFLEET_WORK_ROOT=str(work_root), CCFLEET_WORK_SWEEP_INTERVAL_S="0.5"
    )
    stack.upstream.enqueue(HangReply(60))
    body = {"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}]}
    # The worker dies under the request: what its client hears (an error once the worker's
    # heartbeat has expired) is not this test's matter, so the client leaves at the end.
    with held_post(stack.url, "/v1/messages", body):
        assert stack.upstream.wait_for_requests(1, timeout_s=30)
        busy = [d for d in _worker_dirs(work_root) if any(d.glob("job-*"))]
        assert len(busy) == 1, "the running job has its directory"
        (victim,) = [w for w in stack.workers if _holds_lock_in(w.pid, busy[0])]
        victim.signal(signal.SIGKILL)
        wait_until(lambda: not busy[0].exists(), 20, "the other worker to remove the files")
        assert len(_worker_dirs(work_root)) == 1, "the live worker's own directory stays"


def test_the_working_directory_the_model_sees_names_neither_the_host_nor_the_worker_pid(
    stack: Stack,
) -> None:
    # The CLI's environment message tells the model its working directory, and a client
    # can ask the model to repeat it.
    stack.upstream.enqueue(TextReply(ANSWER))
    loopback.post(
        f"{stack.url}/v1/messages",
        json={"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}]},
        timeout=60,
    ).raise_for_status()
    sent = upstream_text(stack)
    work_root = json.dumps(str(stack.root / "work"))[1:-1]
    seen = [
        line.split(work_root, 1)[1].split()[0] for line in sent.split("\\n") if work_root in line
    ]
    assert seen, "the CLI names its working directory to the model"
    (worker,) = stack.workers
    for shown in seen:
        words = set(re.split(r"[-_/.]", shown))
        assert socket.gethostname() not in words, shown
        assert str(worker.pid) not in words, shown
    assert f"{socket.gethostname()}-{worker.pid}" not in sent
