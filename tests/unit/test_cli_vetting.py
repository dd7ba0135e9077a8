"""The vetted CLI versions (shared/fleet/cli_vetting.py) and the pin in pyproject.toml agree."""

from __future__ import annotations

import tomllib
from pathlib import Path

from shared.fleet.cli_vetting import VETTED_CLI_VERSIONS, is_vetted

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


def test_the_pinned_cli_version_is_one_the_suite_has_vetted() -> None:
    pinned = tomllib.loads(PYPROJECT.read_text())["tool"]["ccfleet"]["claude-code-version"]
    assert is_vetted(pinned), f"run the suite on {pinned}, then add it to VETTED_CLI_VERSIONS"


def test_a_cli_that_reports_no_version_is_not_vetted() -> None:
    assert not is_vetted("unknown")
    assert not is_vetted("unavailable (No such file or directory)")
    assert not is_vetted("")
    assert all(is_vetted(v) for v in VETTED_CLI_VERSIONS)
