"""How this worker runs the CLI, fixed at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from worker.cli.login import AccountLogin


@dataclass(frozen=True)
class CliConfig:
    claude_bin: str
    base_env: dict[str, str]  # only the account's credential (worker/main.py)
    work_root: str  # this worker's own directory (worker/cli/workspace.py)
    timeout_s: float
    kill_grace_s: float
    first_byte_timeout_s: float = 60.0  # upstream silent this long: the attempt is abandoned
    login: AccountLogin = field(default_factory=AccountLogin)
