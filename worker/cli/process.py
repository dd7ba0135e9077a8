"""One `claude` subprocess: its own process group, line I/O, a kill path, always reaped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Coroutine, Sequence
from types import TracebackType
from typing import Any

import orjson

from shared.errors import CliFailed
from shared.process.parent_death import dying_with_parent

logger = logging.getLogger(__name__)

_LINE_LIMIT_BYTES = 256 * 1024 * 1024  # stream-json lines can carry whole images
_STDERR_TAIL_LINES = 40


class CliProcess:
    """Spawn with `async with`; leaving the block kills the whole process group and reaps it,
    unless `keep_running` handed it on (to a resident conversation) and the block ended well."""

    def __init__(
        self, argv: Sequence[str], *, env: dict[str, str], cwd: str, kill_grace_s: float
    ) -> None:
        self._argv = list(argv)
        self._env = env
        self._cwd = cwd
        self._kill_grace_s = kill_grace_s
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self.stderr_tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
        self.started_at = 0.0
        self._kept = False

    def keep_running(self) -> None:
        """Leaving the `async with` block without an exception leaves this process running:
        its new owner stops it (worker/cli/resident.py)."""
        self._kept = True

    async def __aenter__(self) -> CliProcess:
        if self._proc is None:
            await self.start()
        return self

    async def start(self) -> None:
        """Spawn the CLI; `stop` (or leaving an `async with`) ends and reaps it."""
        self.started_at = time.monotonic()
        try:
            self._proc = await self._spawn()
        except OSError as exc:
            raise CliFailed(f"The Claude Code CLI could not be started ({exc.strerror}).") from exc
        self._stderr_task = asyncio.create_task(self._drain_stderr())
        logger.info("cli started pid=%s", self._proc.pid)

    async def _spawn(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *self._argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._env,
            cwd=self._cwd,
            start_new_session=True,
            # The kernel SIGKILLs the CLI if the worker dies.
            preexec_fn=dying_with_parent(signal.SIGKILL),
            limit=_LINE_LIMIT_BYTES,
        )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        kept, self._kept = self._kept, False
        if kept and exc is None:
            return
        await _finish_despite_cancellation(self.stop())

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    async def write_line(self, payload: bytes) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        if self._proc.stdin.is_closing():  # uvloop raises RuntimeError on such a write
            raise CliFailed("The Claude Code CLI exited before reading the request.")
        try:
            self._proc.stdin.write(payload)
            await self._proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise CliFailed("The Claude Code CLI exited before reading the request.") from exc

    def close_stdin(self) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        if not self._proc.stdin.is_closing():
            self._proc.stdin.close()

    async def read_message(self) -> dict[str, Any] | None:
        """The next stream-json object from stdout, or None at end of output."""
        assert self._proc is not None and self._proc.stdout is not None
        while True:
            raw = await self._proc.stdout.readline()
            if not raw:
                return None
            raw = raw.strip()
            if not raw:
                continue
            try:
                message = orjson.loads(raw)
            except orjson.JSONDecodeError:
                logger.warning("cli printed a non-JSON line of %d bytes", len(raw))
                continue
            if isinstance(message, dict):
                return message

    async def wait_exit(self, timeout_s: float) -> int | None:
        """Wait for the process to exit by itself; None if it did not in time."""
        assert self._proc is not None
        try:
            async with asyncio.timeout(timeout_s):
                return await self._proc.wait()
        except TimeoutError:
            return None

    async def stop(self) -> None:
        """SIGTERM the group, SIGKILL after the grace period, reap. Safe to call twice."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            self._signal_group(signal.SIGTERM)
            if await self.wait_exit(self._kill_grace_s) is None:
                self._signal_group(signal.SIGKILL)
                await proc.wait()
        # Children (MCP servers) share the group: make sure none survive the CLI.
        self._signal_group(signal.SIGKILL)
        if self._stderr_task is not None:
            await self._stderr_task
            self._stderr_task = None
        logger.info(
            "cli ended pid=%s rc=%s after %.2fs",
            proc.pid,
            proc.returncode,
            time.monotonic() - self.started_at,
        )

    def _signal_group(self, signum: signal.Signals) -> None:
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signum)

    async def _drain_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        while line := await self._proc.stderr.readline():
            self.stderr_tail.append(line.decode(errors="replace").rstrip())


async def _finish_despite_cancellation(cleanup: Coroutine[Any, Any, None]) -> None:
    """Run `cleanup` to its end even if the caller is cancelled (once or more), then let the
    cancellation through: a cancelled job must not end while its CLI still runs."""
    task = asyncio.create_task(cleanup)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    task.result()
    if cancelled:
        raise asyncio.CancelledError
