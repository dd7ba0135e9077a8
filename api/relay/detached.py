"""Jobs whose client went away but asked for a resume window: cancelled only if nobody
resumes their stream (`Last-Event-ID`) within it. Owned by the front end's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.relay.cancel import cancel_job
from shared.broker import redis_keys
from shared.broker.outage import outlasting_outage
from shared.queue.job_queue import JobQueue

logger = logging.getLogger(__name__)


class DetachedJobs:
    def __init__(self, redis: Redis, queue: JobQueue, *, redis_outage_s: float) -> None:
        self._redis = redis
        self._queue = queue
        self._redis_outage_s = redis_outage_s
        self._tasks: set[asyncio.Task[None]] = set()

    def cancel_later(
        self,
        job_id: str,
        *,
        after_s: float,
        only_if_alone: bool = True,
        then: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Cancel the job after `after_s` (riding out a Redis outage), unless, when
        `only_if_alone`, a resumed stream is attached to it by then; `then` runs once it is
        cancelled (the end of its concurrency lease now, not when its worker books the
        cancelled run; a job no worker took ends its whole hold as it is cancelled,
        api/relay/cancel.py)."""
        task = asyncio.create_task(
            self._cancel_unless_resumed(job_id, after_s, only_if_alone, then)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cancel_unless_resumed(
        self,
        job_id: str,
        after_s: float,
        only_if_alone: bool,
        then: Callable[[], Awaitable[None]] | None,
    ) -> None:
        await asyncio.sleep(after_s)
        try:
            await outlasting_outage(
                lambda: self._cancel(job_id, only_if_alone, then), limit_s=self._redis_outage_s
            )
        except RedisError:
            logger.warning("could not cancel detached job %s", job_id, exc_info=True)

    async def _cancel(
        self, job_id: str, only_if_alone: bool, then: Callable[[], Awaitable[None]] | None
    ) -> None:
        if only_if_alone and int(await self._redis.get(redis_keys.job_readers(job_id)) or 0) > 0:
            return  # resumed: the job goes on, and its worker ends the lease with it
        await cancel_job(self._redis, self._queue, job_id)
        if then is not None:
            await then()

    async def close(self) -> None:
        """Shutting down: the jobs keep running (a resume may still come to another replica)."""
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
