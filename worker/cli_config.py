"""How this worker runs the CLI, fixed at start-up."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CliConfig:
    claude_bin: str
    base_env: dict[str, str]
    work_root: str
    timeout_s: float
    kill_grace_s: float
