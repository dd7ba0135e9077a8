"""`ccfleet check-cli`: can the claude CLI of this environment serve requests?

It runs `claude --version` and `claude auth status` (exit code 1 when no credential logs the
CLI in; offline, ~0.5 s and ~135 MB each with CLI 2.1.328) with the environment a worker gives
its CLI. The worker's startup probe in k8s/ runs it, so a pod whose CLI is missing, hangs or
has no login never counts as started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class CliCheck:
    ok: bool
    message: str  # one line for the operator; never contains the credential


def check_cli(claude_bin: str, env: Mapping[str, str], *, timeout_s: float) -> CliCheck:
    """The CLI answers `--version` and reports a login, each within timeout_s."""
    version = _run(claude_bin, ["--version"], env, timeout_s=timeout_s)
    if isinstance(version, CliCheck):
        return version
    if version.returncode != 0:
        return CliCheck(False, f"{claude_bin} --version exited with code {version.returncode}")
    shown_version = version.stdout.strip().split(" ")[0] or "unknown"
    auth = _run(claude_bin, ["auth", "status"], env, timeout_s=timeout_s)
    if isinstance(auth, CliCheck):
        return auth
    if auth.returncode != 0:
        return CliCheck(
            False,
            f"claude {shown_version} is not logged in (`claude auth status` exited with code "
            f"{auth.returncode}): give it CLAUDE_CODE_OAUTH_TOKEN, ANTHROPIC_API_KEY or a "
            "logged-in CLAUDE_CONFIG_DIR",
        )
    return CliCheck(True, f"claude {shown_version}: logged in")


def _run(
    claude_bin: str, args: list[str], env: Mapping[str, str], *, timeout_s: float
) -> subprocess.CompletedProcess[str] | CliCheck:
    """One CLI run in its own process group; on timeout the whole group is killed and reaped."""
    try:
        proc = subprocess.Popen(
            [claude_bin, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=dict(env),
            text=True,
            start_new_session=True,
        )
    except OSError as exc:
        return CliCheck(False, f"cannot start {claude_bin}: {exc.strerror}")
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return CliCheck(False, f"{claude_bin} {' '.join(args)} gave no answer in {timeout_s:g} s")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out)
