"""OpenAI's Codex CLI through ccfleet: `codex exec` with a provider table for /v1/responses.

The Codex configuration is docs/api.md's (a `[model_providers.ccfleet]` with
`wire_api = "responses"` and `env_key`; update checks, analytics, feedback and plugins off, so
that Codex reaches nothing but the stack), with no retries and a read-only sandbox. The stack
is tests/e2e/conftest.py's `responses_stack`; the shell tool's round trip runs through its
resident twin too (`responses_both_paths`). The fake upstream behind the real CLI scripts the
model's turns.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Stack
from tests.e2e.conftest import (
    MODEL,
    BothPaths,
    Endpoint,
    ResponsesKeys,
    without_cli_additions,
)
from tests.fakes.upstream import BlocksReply, FakeUpstream, Reply, TextReply, ToolUseBlock
from tests.resident_fidelity import without_cli_reminders

pytestmark = pytest.mark.xdist_group("responses_stack")

CODEX_CONFIG = """\
model = "{model}"
model_provider = "ccfleet"
approval_policy = "never"
sandbox_mode = "read-only"
check_for_update_on_startup = false

[model_providers.ccfleet]
name = "ccfleet"
base_url = "{url}/v1"
wire_api = "responses"
env_key = "CCFLEET_API_KEY"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[feedback]
enabled = false

[features]
plugins = false
remote_plugin = false
apps = false
"""


def _pinned_codex() -> str | None:
    """Where tests/run.sh installs the pinned Codex CLI (~/.cache/ccfleet/codex-<version>)."""
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    version = pyproject["tool"]["ccfleet"]["codex-version"]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = cache / "ccfleet" / f"codex-{version}" / "node_modules" / ".bin" / "codex"
    return str(path) if path.exists() else None


@pytest.fixture(scope="module")
def codex_bin() -> str:
    path = os.environ.get("CCFLEET_TEST_CODEX_BIN") or _pinned_codex()
    if not path:
        pytest.fail("No codex CLI: run the suite with tests/run.sh, which installs it.")
    return path


@pytest.fixture
def stack(responses_stack: Stack, upstream: FakeUpstream) -> Stack:
    """The shared stack, with the fake upstream's script emptied."""
    return responses_stack


def codex_exec(
    to: Endpoint, codex_bin: str, home: Path, prompt: str
) -> subprocess.CompletedProcess[str]:
    """`codex exec PROMPT` in an empty directory, stdin closed (else it waits for more)."""
    (home / "codex").mkdir(parents=True, exist_ok=True)
    (home / "codex" / "config.toml").write_text(CODEX_CONFIG.format(model=MODEL, url=to.url))
    (home / "work").mkdir(exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "CODEX_HOME": str(home / "codex"),
        "CCFLEET_API_KEY": to.key,  # a client key, as any client of the fleet has
    }
    return subprocess.run(
        [codex_bin, "exec", "--skip-git-repo-check", prompt],
        cwd=home / "work",
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_codex_answers_a_prompt_through_ccfleet(
    stack: Stack, codex_bin: str, tmp_path: Path, responses_keys: ResponsesKeys
) -> None:
    stack.upstream.enqueue(TextReply("Hello from the fleet."))
    to = Endpoint(stack.url, responses_keys.mine)
    done = codex_exec(to, codex_bin, tmp_path, "Say hello.")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Hello from the fleet." in done.stdout
    [request] = stack.upstream.requests
    # Codex's developer messages are the system prompt; its prompt is the last turn.
    assert "Codex" in request.body["system"][-1]["text"]
    last = without_cli_additions(request.body["messages"])[-1]
    assert last["role"] == "user"
    assert any(block.get("text") == "Say hello." for block in last["content"])


_RUN_OF_THE_COMMAND = re.compile(r"Chunk ID: \w+|Wall time: [\d.]+ seconds")


def without_codex_run_details(body: dict[str, Any]) -> str:
    """`without_cli_reminders` less what differs each time Codex runs a command (the output
    chunk's id and the wall time it reports in the tool result)."""
    return _RUN_OF_THE_COMMAND.sub("", without_cli_reminders(body))


def test_codex_runs_its_shell_tool_and_sends_the_output_back_resident_or_replayed(
    responses_both_paths: BothPaths, codex_bin: str, tmp_path: Path
) -> None:
    command = {"cmd": "echo tool-ran-$((6*7))"}
    replies: list[Reply] = [
        BlocksReply([ToolUseBlock("toolu_codex1", "mcp__client__exec_command", command)]),
        TextReply("The command printed tool-ran-42."),
    ]

    def run(to: Endpoint) -> subprocess.CompletedProcess[str]:
        return codex_exec(to, codex_bin, tmp_path, "Run the echo.")  # the same cwd both times

    paths = responses_both_paths
    done, replayed = paths.session(run, replies, follow_ups=1, comparable=without_codex_run_details)
    for finished in done, replayed:
        assert finished.returncode == 0, finished.stderr[-3000:]
        assert "The command printed tool-ran-42." in finished.stdout
    sent = without_cli_additions(paths.resident_bodies[-1]["messages"])
    uses = [b for m in sent for b in m["content"] if b["type"] == "tool_use"]
    assert [(u["id"], u["input"]) for u in uses] == [("toolu_codex1", command)]
    results = [b for m in sent for b in m["content"] if b["type"] == "tool_result"]
    assert [r["tool_use_id"] for r in results] == ["toolu_codex1"]
    assert "tool-ran-42" in json.dumps(results[0]["content"])
