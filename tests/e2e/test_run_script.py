"""tests/run.sh against another CLI version: how an operator vets an upgrade.

A stand-in `claude` reporting version X is put where run.sh caches X, and a stand-in `codex`
of the pinned version where run.sh caches Codex, so nothing is downloaded; the inner pytest
runs one small test file.
"""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]


def fake_cached_cli(cache: Path, version: str, *, reports: str) -> None:
    bin_dir = cache / "ccfleet" / f"claude-code-{version}" / "node_modules" / ".bin"
    bin_dir.mkdir(parents=True)
    claude = bin_dir / "claude"
    claude.write_text(f'#!/bin/sh\necho "{reports} (Claude Code)"\n')
    claude.chmod(0o755)
    pinned = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ccfleet"]
    codex_dir = cache / "ccfleet" / f"codex-{pinned['codex-version']}" / "node_modules" / ".bin"
    codex_dir.mkdir(parents=True)
    codex = codex_dir / "codex"
    codex.write_text(f'#!/bin/sh\necho "codex-cli {pinned["codex-version"]}"\n')
    codex.chmod(0o755)


def run_script(cache: Path, version: str) -> subprocess.CompletedProcess[str]:
    uv_cache = subprocess.run(["uv", "cache", "dir"], capture_output=True, text=True, check=True)
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(cache),
        "UV_CACHE_DIR": uv_cache.stdout.strip(),  # uv's own cache stays where it is
        "CCFLEET_CLAUDE_CODE_VERSION": version,
    }
    env.pop("CCFLEET_TEST_CLAUDE_BIN", None)
    env.pop("CCFLEET_TEST_CODEX_BIN", None)
    return subprocess.run(
        ["bash", "tests/run.sh", "tests/unit/test_cli_vetting.py", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_run_sh_runs_the_suite_with_the_cli_version_it_is_given(tmp_path: Path) -> None:
    fake_cached_cli(tmp_path, "9.9.9", reports="9.9.9")
    result = run_script(tmp_path, "9.9.9")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("9.9.9 (Claude Code)"), result.stdout
    assert "2 passed" in result.stdout


def test_run_sh_refuses_what_is_not_a_cli_version(tmp_path: Path) -> None:
    result = run_script(tmp_path, "9.9; rm -rf ~")
    assert result.returncode == 2
    assert "not a CLI version" in result.stderr
