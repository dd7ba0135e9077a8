"""Asks the installed claude CLI for its version (reported in the heartbeat)."""

from __future__ import annotations

import asyncio
import contextlib


async def read_cli_version(claude_bin: str, env: dict[str, str], *, timeout_s: float = 30) -> str:
    try:
        proc = await asyncio.create_subprocess_exec(
            claude_bin,
            "--version",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        return f"unavailable ({exc.strerror})"
    try:
        async with asyncio.timeout(timeout_s):
            out, _ = await proc.communicate()
    except TimeoutError:
        return "unknown (timed out)"
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    return out.decode(errors="replace").strip().split(" ")[0] or "unknown"
