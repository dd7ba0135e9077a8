"""The Claude Code CLI versions ccfleet's test suite has passed against: the vetted ones.

A worker reports its CLI version in its heartbeat. One on a version not listed here still
serves, but `GET /v1/fleet` and `ccfleet status` flag it: its CLI may print, send or refuse
things the suite never saw. To vet a version X, run the whole suite against it
(`CCFLEET_CLAUDE_CODE_VERSION=X bash tests/run.sh`); when it passes, add X here. The version
pinned in pyproject.toml (`[tool.ccfleet] claude-code-version`) must be listed
(tests/unit/test_cli_vetting.py checks it).
"""

from __future__ import annotations

from collections.abc import Collection

VETTED_CLI_VERSIONS: tuple[str, ...] = ("2.1.328", "2.1.332")


def is_vetted(cli_version: str, vetted: Collection[str] = VETTED_CLI_VERSIONS) -> bool:
    """`cli_version` as a heartbeat reports it ("2.1.332", "unknown", "unavailable (...)")."""
    return cli_version in vetted
