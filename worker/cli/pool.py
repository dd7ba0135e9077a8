"""Ready CLI processes, started ahead of the requests that will use them.

Starting the CLI is most of a request's time to first token (docs/measured-facts.md §1): a
process started with `--input-format stream-json` waits idle on stdin, and the system prompt,
the client's tools and the thinking budget go in after spawn (`cli_command.control_lines`).
What only argv or the environment carries (model, output token limit, effort, bare) is a
process's `SpawnShape`; the pool keeps ready processes for the shapes most asked for lately,
at most `max_ready` in all. A request of another shape starts its CLI cold. Each ready
process serves one request (a second would carry the first one's history) and has a private
workspace of its own. A process that idles past `idle_s`, or dies while waiting, is stopped
and replaced; `close` stops them all (and each dies with its worker: PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass

from shared.errors import CliFailed
from worker.cli.command import SpawnShape, cli_argv, cli_environment
from worker.cli.config import CliConfig
from worker.cli.process import CliProcess
from worker.cli.workspace import Workspace, create_workspace, remove_workspace

logger = logging.getLogger(__name__)

_CHECK_INTERVAL_S = 1.0


@dataclass
class WarmCli:
    shape: SpawnShape
    process: CliProcess
    workspace: Workspace
    ready_at: float

    async def discard(self) -> None:
        await self.process.stop()
        remove_workspace(self.workspace)


@dataclass
class PoolStats:
    ready: int = 0
    hits: int = 0
    misses: int = 0
    recycled: int = 0
    died: int = 0


class CliPool:
    def __init__(
        self,
        config: CliConfig,
        *,
        max_ready: int,
        idle_s: float,
        demand_window_s: float,
        stats: PoolStats | None = None,
    ) -> None:
        self._config = config
        self.max_ready = max_ready
        self.idle_s = idle_s
        self._demand_window_s = demand_window_s
        self._ready: list[WarmCli] = []
        self._demand: deque[tuple[float, SpawnShape]] = deque(maxlen=200)
        self._changed = asyncio.Event()
        self.stats = stats if stats is not None else PoolStats()

    def ready_pids(self) -> list[int]:
        return [warm.process.pid for warm in self._ready]

    def take(self, shape: SpawnShape) -> WarmCli | None:
        """A ready process of this shape, now the caller's to run and stop; None: start cold."""
        self._demand.append((time.monotonic(), shape))
        self._changed.set()
        for index, warm in enumerate(self._ready):
            if warm.shape == shape and warm.process.returncode is None:
                self.stats.hits += 1
                self.stats.ready -= 1
                return self._ready.pop(index)
        self.stats.misses += 1
        return None

    async def run(self) -> None:
        """Keep the wanted processes ready; owned by the worker's start-up/shut-down hooks."""
        while True:
            await self._drop_dead_and_idle()
            await self._fill()
            self._changed.clear()
            try:
                async with asyncio.timeout(_CHECK_INTERVAL_S):
                    await self._changed.wait()
            except TimeoutError:
                pass

    async def close(self) -> None:
        ready, self._ready = self._ready, []
        self.stats.ready = 0
        for warm in ready:
            await warm.discard()

    def wanted(self) -> Counter[SpawnShape]:
        """How many ready processes of each shape: one each for the most asked-for shapes of
        the demand window, then a second for the busiest, and so on, `max_ready` in all."""
        horizon = time.monotonic() - self._demand_window_s
        counts = Counter(shape for at, shape in self._demand if at >= horizon)
        ranked = [shape for shape, _ in counts.most_common()]
        wanted: Counter[SpawnShape] = Counter()
        while ranked and sum(wanted.values()) < self.max_ready:
            for shape in ranked:
                if sum(wanted.values()) == self.max_ready:
                    break
                if wanted[shape] < counts[shape]:
                    wanted[shape] += 1
            if all(wanted[shape] >= counts[shape] for shape in ranked):
                break
        return wanted

    async def _drop_dead_and_idle(self) -> None:
        now = time.monotonic()
        keep: list[WarmCli] = []
        wanted = self.wanted()
        for warm in self._ready:
            if warm.process.returncode is not None:
                self.stats.died += 1
                logger.warning("a ready cli exited while waiting (rc=%s)", warm.process.returncode)
                await warm.discard()
            elif now - warm.ready_at > self.idle_s or wanted[warm.shape] == 0:
                self.stats.recycled += 1
                await warm.discard()
            else:
                keep.append(warm)
                wanted[warm.shape] -= 1
        self._ready = keep
        self.stats.ready = len(keep)

    async def _fill(self) -> None:
        have = Counter(warm.shape for warm in self._ready)
        for shape, count in self.wanted().items():
            for _ in range(count - have[shape]):
                warm = await self._start(shape)
                if warm is None:
                    return  # the CLI cannot start now; the next check tries again
                self._ready.append(warm)
                self.stats.ready = len(self._ready)

    async def _start(self, shape: SpawnShape) -> WarmCli | None:
        workspace = create_workspace(self._config.work_root, "warm")
        self._config.login.install(workspace.config_dir)
        process = CliProcess(
            cli_argv(self._config.claude_bin, shape),
            env=cli_environment(
                self._config.base_env, workspace.tmp_dir, shape, home=workspace.home
            ),
            cwd=workspace.cwd,
            kill_grace_s=self._config.kill_grace_s,
        )
        try:
            await process.start()
        except CliFailed:
            logger.exception("could not start a ready cli")
            remove_workspace(workspace)
            return None
        except BaseException:  # cancelled while starting: nothing may be left behind
            await process.stop()
            remove_workspace(workspace)
            raise
        return WarmCli(shape=shape, process=process, workspace=workspace, ready_at=time.monotonic())
