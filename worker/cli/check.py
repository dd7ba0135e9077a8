"""Can this worker's CLI serve? It runs, it says its version, and it is logged in.

A worker checks at start and every `CCFLEET_CLI_CHECK_INTERVAL_S`; one whose CLI cannot serve
beats as `broken` with the problem and takes no jobs, until a check passes again. `ccfleet up`
runs the same check before it starts anything, to print the problem and its fix, and so does
`ccfleet check-cli`, the workers' startup probe in k8s/ and compose. Each CLI call costs ~0.5 s
and ~135 MB offline (CLI 2.1.328).

Whether the CLI is logged in comes from `claude auth status`, which answers from the
environment and the CLI's config directory without a model request (docs/measured-facts.md
§8): JSON with `loggedIn` and `authMethod` (`oauth_token`, `api_key`, `claude.ai`, or `none`
with exit code 1). It cannot tell an expired or revoked credential from a good one: those
still fail at the first request, as an upstream `authentication_error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import tomllib
from dataclasses import dataclass
from pathlib import Path

from worker.cli.command import FORCED_ENV
from worker.context import WorkerState

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 30.0

LOGIN_FIX = (
    "Log the CLI in as the worker's user: `claude /login` (or in the worker's "
    "CLAUDE_CONFIG_DIR), or give the worker CLAUDE_CODE_OAUTH_TOKEN from `claude setup-token`, "
    "or ANTHROPIC_API_KEY."
)


@dataclass(frozen=True)
class CliCheck:
    version: str
    """What `claude --version` says; empty when it did not answer."""
    problem: str = ""
    """Why the CLI cannot serve, for operators and clients; empty when it can."""
    fix: str = ""
    """What an operator does about the problem."""


async def check_cli(
    claude_bin: str, base_env: dict[str, str], *, timeout_s: float = CHECK_TIMEOUT_S
) -> CliCheck:
    """Run `claude --version` and `claude auth status` with the worker's CLI environment."""
    env = {**base_env, **FORCED_ENV}
    name = f"The Claude Code CLI {claude_bin}"
    try:
        code, out = await _run([claude_bin, "--version"], env, timeout_s)
    except TimeoutError:  # before OSError, of which it is a subclass
        return CliCheck("", f"{name}: --version gave no answer in {timeout_s:g} s.", install_fix())
    except OSError as exc:
        return CliCheck("", f"{name} cannot start: {exc.strerror}.", install_fix())
    version = out.strip().split(" ")[0]
    if code != 0 or not version:
        return CliCheck("", f"{name}: --version exited with code {code}.", install_fix())
    try:
        _code, out = await _run([claude_bin, "auth", "status", "--json"], env, timeout_s)
        status = json.loads(out)
    except (OSError, TimeoutError, ValueError) as exc:
        # An older CLI without `auth status`: nothing says it cannot serve.
        logger.warning("claude auth status gave no answer (%s); login not checked", exc)
        return CliCheck(version)
    if isinstance(status, dict) and status.get("loggedIn") is False:
        return CliCheck(version, "The Claude Code CLI is not logged in.", LOGIN_FIX)
    return CliCheck(version)


def record_check(state: WorkerState, check: CliCheck) -> None:
    """What the heartbeat reports from now on; a change is logged."""
    if check.problem and check.problem != state.broken_reason:
        logger.error("this worker cannot serve: %s %s", check.problem, check.fix)
    elif state.broken_reason and not check.problem:
        logger.info("the CLI check passes again (%s); taking jobs", check.version)
    state.broken_reason = check.problem
    state.cli_version = check.version


async def check_cli_forever(
    claude_bin: str, base_env: dict[str, str], state: WorkerState, *, interval_s: float
) -> None:
    """Owned by the worker's start-up/shut-down hooks, like the heartbeat."""
    while True:
        await asyncio.sleep(interval_s)
        record_check(state, await check_cli(claude_bin, base_env))


def install_fix() -> str:
    version = pinned_cli_version()
    package = f"@anthropic-ai/claude-code@{version}" if version else "@anthropic-ai/claude-code"
    return (
        f"Install the pinned CLI (`npm install -g {package}`) "
        "or point CCFLEET_CLAUDE_BIN at the claude executable."
    )


def pinned_cli_version() -> str:
    """The CLI version ccfleet is pinned to, where its pyproject.toml is at hand (a checkout)."""
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        version = tomllib.loads(pyproject.read_text())["tool"]["ccfleet"]["claude-code-version"]
    except (OSError, ValueError, KeyError):
        return ""
    return str(version)


async def _run(argv: list[str], env: dict[str, str], timeout_s: float) -> tuple[int, str]:
    """Exit code and stdout of a short CLI command; killed with its group after `timeout_s`."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(timeout_s):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own group: children too
            await proc.wait()
    return proc.returncode or 0, out.decode(errors="replace")
