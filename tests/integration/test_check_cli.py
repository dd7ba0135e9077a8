"""`ccfleet check-cli`, the workers' startup probe: the real CLI, a missing one, a hanging one.

It runs the check every worker runs at start and every few minutes (worker/cli/check.py):
`claude auth status` says whether the CLI is logged in without a model request (measured with
the pinned CLI: docs/measured-facts.md §8), so the real CLI runs where its answer is checked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

FAKE_CLI = Path(__file__).parent.parent / "fakes" / "fake_cli.py"


def _check_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccfleet", "check-cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _clean_env(tmp_path: Path, claude_bin: str, **extra: str) -> dict[str, str]:
    """A worker-like environment: no credential of the machine's own, an empty HOME."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "CCFLEET_CLAUDE_BIN": claude_bin,
        **extra,
    }


@pytest.mark.parametrize(
    "credential",
    [
        {"CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-test"},
        {"ANTHROPIC_API_KEY": "sk-ant-api03-test"},
    ],
    ids=["oauth-token", "api-key"],
)
def test_check_cli_passes_for_the_pinned_cli_with_a_token(
    tmp_path: Path, claude_bin: str, credential: dict[str, str]
) -> None:
    result = _check_cli(_clean_env(tmp_path, claude_bin, **credential))
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"claude \d+\.\d+\.\d+: logged in\n", result.stdout), result.stdout
    assert "sk-ant-" not in result.stdout + result.stderr


def test_check_cli_fails_when_no_credential_logs_the_cli_in(
    tmp_path: Path, claude_bin: str
) -> None:
    result = _check_cli(_clean_env(tmp_path, claude_bin))
    assert result.returncode == 1
    assert "The Claude Code CLI is not logged in." in result.stderr
    assert "claude /login" in result.stderr
    assert "claude setup-token" in result.stderr


def test_check_cli_fails_when_the_cli_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-claude"
    result = _check_cli(_clean_env(tmp_path, str(missing)))
    assert result.returncode == 1
    assert f"{missing} cannot start: No such file or directory." in result.stderr
    assert "npm install -g @anthropic-ai/claude-code@" in result.stderr


def test_check_cli_kills_a_hanging_cli_and_fails(tmp_path: Path) -> None:
    pid_file = tmp_path / "cli.pid"
    hanging = tmp_path / "claude"
    # check-cli passes the CLI only a worker's CLI environment, so the script sets the mode.
    hanging.write_text(
        "#!/bin/sh\n"
        f"FAKE_CLI_MODE=ignore_sigterm FAKE_CLI_PID_FILE={pid_file} "
        f'exec "{sys.executable}" "{FAKE_CLI}" "$@"\n'
    )
    hanging.chmod(0o755)
    result = _check_cli(_clean_env(tmp_path, str(hanging)), "--timeout", "1")
    assert result.returncode == 1
    assert "gave no answer in 1 s" in result.stderr
    # check-cli kills the CLI's process group and reaps it before it exits.
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists(), "the hanging CLI survived check-cli"


def test_check_cli_fails_when_the_cli_cannot_report_its_version(tmp_path: Path) -> None:
    broken = tmp_path / "claude"
    broken.write_text("#!/bin/sh\necho 'cannot load the native binary' >&2\nexit 3\n")
    broken.chmod(0o755)
    result = _check_cli(_clean_env(tmp_path, str(broken)))
    assert result.returncode == 1
    assert "--version exited with code 3" in result.stderr
