"""Long-lived tasks a process cannot serve without: a front end's chunk hub, a worker's heartbeat.

Each loops for the life of its process and rides out Redis outages itself. If one ends all
the same (a bug, an error nobody foresaw), the process would go on looking healthy while it
no longer relays chunks or no longer beats. So its end is logged with its traceback, and the
owner is asked to stop (`on_death`); `failed` then names the task, and the process exits
non-zero so that its orchestrator restarts it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

logger = logging.getLogger(__name__)


class VitalTasks:
    def __init__(self, on_death: Callable[[], None]) -> None:
        self._on_death = on_death
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.failed: str | None = None
        self._stopping = False

    def start(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self.tasks[name] = task
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self._stopping:
            return
        name = task.get_name()
        if task.cancelled():
            logger.critical("vital task %s was cancelled; stopping the process", name)
        elif (error := task.exception()) is not None:
            logger.critical("vital task %s died; stopping the process", name, exc_info=error)
        else:
            logger.critical("vital task %s ended; stopping the process", name)
        if self.failed is None:
            self.failed = name
            self._on_death()

    async def stop(self) -> None:
        """The process is stopping: cancel every task and wait for it (not a death)."""
        self._stopping = True
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
