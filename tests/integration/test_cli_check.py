"""A worker checks its CLI: it runs, its version, and whether it is logged in.

`claude auth status` answers from the environment and the CLI's config directory, without a
model request (measured with the pinned CLI: JSON with `loggedIn` and `authMethod`, exit
code 1 when logged out). The real pinned CLI runs here where its answer is what is checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from worker.cli_check import check_cli


def cli_env(tmp_path: Path, **credential: str) -> dict[str, str]:
    """An environment with nothing logged in but `credential`."""
    (tmp_path / "config").mkdir(exist_ok=True)
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "CLAUDE_CONFIG_DIR": str(tmp_path / "config"),
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        **credential,
    }


@pytest.mark.parametrize(
    "credential",
    [
        {"CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-test"},
        {"ANTHROPIC_API_KEY": "sk-ant-api03-test"},
    ],
    ids=["oauth-token", "api-key"],
)
async def test_a_logged_in_cli_can_serve_and_reports_its_version(
    claude_bin: str, tmp_path: Path, credential: dict[str, str]
) -> None:
    check = await check_cli(claude_bin, cli_env(tmp_path, **credential))
    assert check.problem == ""
    assert re.fullmatch(r"\d+\.\d+\.\d+", check.version), check.version


async def test_a_cli_logged_in_nowhere_cannot_serve(claude_bin: str, tmp_path: Path) -> None:
    check = await check_cli(claude_bin, cli_env(tmp_path))
    assert re.fullmatch(r"\d+\.\d+\.\d+", check.version), check.version
    assert check.problem == "The Claude Code CLI is not logged in."
    assert "claude /login" in check.fix
    assert "claude setup-token" in check.fix


async def test_a_missing_cli_cannot_serve(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-claude")
    check = await check_cli(missing, cli_env(tmp_path))
    assert (
        check.problem == f"The Claude Code CLI {missing} cannot be run: No such file or directory."
    )
    assert "npm install -g @anthropic-ai/claude-code@" in check.fix
    assert "CCFLEET_CLAUDE_BIN" in check.fix


async def test_a_cli_that_does_not_answer_in_time_cannot_serve(tmp_path: Path) -> None:
    hanging = tmp_path / "claude"
    hanging.write_text("#!/bin/sh\nexec sleep 60\n")
    hanging.chmod(0o755)
    check = await check_cli(str(hanging), cli_env(tmp_path), timeout_s=0.5)
    assert check.problem == f"The Claude Code CLI {hanging} did not answer `--version` in 0.5 s."
