"""The worker's part in message batches: keep the batch lane fed, and look after batches.

Each worker runs one `BatchFeeder` task. It feeds batch requests to the queue (round-robin,
shared/batches/dispatch.py) whenever one of its batch jobs finishes and every `batch_check_s`,
keeping about one waiting job per free batch slot of the fleet; once every account has spent
its monthly budget, it ends the waiting requests `errored` instead. Every `batch_check_s` one
worker of the fleet (whichever takes the turn in Redis) also checks the open batches:
expiry, requests whose worker died or whose job was lost. While no batch is open, a tick is
one read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.access.admission import accounts_budget_spent
from shared.batches.dispatch import BatchDispatch
from shared.batches.store import BatchStore
from shared.broker import redis_keys
from shared.fleet.lanes import lane_policies
from shared.fleet.registry import read_fleet
from shared.settings import Settings

logger = logging.getLogger(__name__)


class BatchFeeder:
    def __init__(
        self, redis: Redis, store: BatchStore, dispatch: BatchDispatch, settings: Settings
    ) -> None:
        self._redis = redis
        self._store = store
        self._dispatch = dispatch
        self._settings = settings
        self._batch_lane = lane_policies(settings).batch
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A batch slot came free here: feed now rather than at the next tick."""
        self._wake.set()

    async def run(self) -> None:
        """Owned by the worker's start-up/shut-down hooks; survives Redis outages."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.batches.check_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                if not await self._store.any_open():
                    continue  # nothing to feed or look after: one read a tick
                await self._feed()
                if await self._take_turn():
                    await self._check_open_batches()
            except (RedisError, OSError) as exc:
                logger.warning("batch feeding paused: %s", type(exc).__name__)

    async def _feed(self) -> None:
        fleet = await read_fleet(self._redis, heartbeat_ttl_s=self._settings.worker.heartbeat_ttl_s)
        spent = accounts_budget_spent(fleet)
        if spent is not None:  # nothing could run before the month turns: say so now
            await self._dispatch.refuse_waiting(spent)
            return
        free_accounts = {a.name for a in fleet.available_accounts()}
        batch_slots = sum(
            self._batch_lane.slots_on(w.slots)
            for w in fleet.workers
            if w.state == "ready" and w.account in free_accounts
        )
        await self._dispatch.feed(waiting_target=batch_slots)

    async def _take_turn(self) -> bool:
        """One worker of the fleet checks the batches per interval."""
        turn_ms = int(self._settings.batches.check_s * 1000)
        return bool(
            await self._redis.set(redis_keys.batches_check_turn(), "1", nx=True, px=turn_ms)
        )

    async def _check_open_batches(self) -> None:
        for batch_id in await self._store.open_batch_ids():
            await self._dispatch.check(batch_id)
