"""`ccfleet api` and `ccfleet worker` refuse to start with a mistyped CCFLEET_ variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("role", ["api", "worker"])
def test_a_role_with_a_mistyped_setting_exits_at_once_naming_the_valid_one(role: str) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    started = subprocess.run(
        [sys.executable, "-m", "ccfleet", role],
        env={**env, "CCFLEET_WORKER_SLOT": "3"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 2
    assert started.stderr == (
        "ccfleet: unknown setting CCFLEET_WORKER_SLOT; did you mean CCFLEET_WORKER_SLOTS?\n"
    )
