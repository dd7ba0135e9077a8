"""The ccfleet commands take their settings as the README's Configuration table says: a
mistyped CCFLEET_ variable stops `ccfleet api` and `ccfleet worker` at once, and CCFLEET_HOST
and CCFLEET_PORT place the front end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ccfleet.embedded_redis import EmbeddedRedis, free_port
from tests.processes import ManagedProcess, http_ok, wait_until


def base_env() -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}


@pytest.mark.parametrize("role", ["api", "worker"])
def test_a_role_with_a_mistyped_setting_exits_at_once_naming_the_valid_one(role: str) -> None:
    started = subprocess.run(
        [sys.executable, "-m", "ccfleet", role],
        env={**base_env(), "CCFLEET_WORKER_SLOT": "3"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 2
    assert started.stderr == (
        "ccfleet: unknown setting CCFLEET_WORKER_SLOT; did you mean CCFLEET_WORKER_SLOTS?\n"
    )


def test_the_front_end_listens_where_ccfleet_host_and_port_say(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **base_env(),
        "CCFLEET_REDIS_URL": redis_server.url,
        "CCFLEET_AUTH": "off",
        "CCFLEET_HOST": "127.0.0.1",
        "CCFLEET_PORT": str(port),
    }
    api = ManagedProcess(["api"], env=env, log_path=tmp_path / "api.log")
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), 30, "the front end")
    finally:
        api.stop()
