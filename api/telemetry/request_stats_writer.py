"""Writes the outcomes of requests that ended to the shared rollup (shared/telemetry/
request_stats.py), in batches, from one task the front end's lifespan owns.

A request adds its outcome and is done: the write neither holds the request's task nor costs
it a round trip. After each write the writer pauses (`pause_s`, 1 s: the rollup's buckets are
10 s) and the outcomes added meanwhile go in the next one, summed per bucket: a thousand
streams ending over a second or two cost a few round trips, not one for every few.
A Redis that does not answer (within RECORD_TIMEOUT_S) costs the dashboard those samples,
never a request; nor does any other failure to write them, which is logged: the figures are
not worth stopping a front end for.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.telemetry.request_stats import RequestOutcome, record_requests

logger = logging.getLogger(__name__)

RECORD_TIMEOUT_S = 1.0
PAUSE_S = 1.0


class RequestStatsWriter:
    def __init__(self, redis: Redis, *, pause_s: float = PAUSE_S) -> None:
        self._redis = redis
        self._pause_s = pause_s
        self._outcomes: list[RequestOutcome] = []
        self._added = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, outcome: RequestOutcome) -> None:
        self._outcomes.append(outcome)
        self._added.set()

    def start(self) -> None:
        """Write outcomes as they are added, until `stop`."""
        self._task = asyncio.create_task(self._run(), name="request-stats")

    async def stop(self) -> None:
        """Stop writing as outcomes come, and write those added last."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()

    async def _run(self) -> None:
        while True:
            await self._added.wait()
            try:
                await self.flush()
            except Exception:
                logger.exception("requests not added to the dashboard's figures")
            await asyncio.sleep(self._pause_s)

    async def flush(self) -> None:
        """Write the outcomes added so far."""
        self._added.clear()
        outcomes, self._outcomes = self._outcomes, []
        if not outcomes:
            return
        try:
            async with asyncio.timeout(RECORD_TIMEOUT_S):
                await record_requests(self._redis, outcomes)
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning(
                "%d requests not added to the dashboard's figures: %s",
                len(outcomes),
                type(exc).__name__,
            )
