"""The worker's life line: a subscription that Redis drops the moment the worker's process dies.

shared/fleet/liveness.py states the rule readers apply. This side holds the line: subscribe to
the worker's own channel, confirm on a plain connection that the subscription is seen there,
and only then name the server (its run_id) in `WorkerState.life_run_id` and beat at once, so
the heartbeat names the line from then on. While the line is down the field is empty, and the
next beat writes it so: nobody counts on the line. A lost line is opened again at once: while
Redis stays up, a worker whose line is cut looks dead until it holds the line again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from shared.broker import redis_keys
from worker.context import WorkerState
from worker.heartbeat import beat

logger = logging.getLogger(__name__)

_REOPEN_S = 0.5
_LISTEN_TIMEOUT_S = 30.0
"""A bounded read: each one lets redis-py PING an idle line once per health-check period."""


class LifeLine:
    def __init__(self, redis: Redis, state: WorkerState, *, heartbeat_ttl_s: float) -> None:
        self._redis = redis
        self._state = state
        self._heartbeat_ttl_s = heartbeat_ttl_s
        self._channel = redis_keys.worker_life_channel(state.worker_id)

    async def hold_forever(self) -> None:
        """Owned by the worker's start-up/shut-down hooks; survives Redis outages."""
        while True:
            pubsub = self._redis.pubsub()
            try:
                await self._hold(pubsub)
            except (RedisError, OSError) as exc:
                # Once per loss, not at every try while Redis stays away.
                level = logging.WARNING if self._state.life_run_id else logging.DEBUG
                logger.log(level, "life line lost (%s)", type(exc).__name__)
            finally:
                was_held = bool(self._state.life_run_id)
                self._state.life_run_id = ""
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py 5 leaves it untyped
            # A line cut while Redis stays up (a killed connection) makes this worker look
            # dead until it is held again, so the first try is at once.
            await asyncio.sleep(0 if was_held else _REOPEN_S)

    async def _hold(self, pubsub: PubSub) -> None:
        await pubsub.subscribe(self._channel)
        while True:
            # Nobody publishes here: this returns on timeouts, a (re)subscription's
            # confirmation (redis-py may reconnect by itself), and raises once the line is cut.
            message = await pubsub.get_message(timeout=_LISTEN_TIMEOUT_S)
            subscribed = message is not None and message["type"] == "subscribe"
            if subscribed or not self._state.life_run_id:
                await self._confirm()

    async def _confirm(self) -> None:
        """Name the server if the subscription is seen on the pool's connection, which is
        the server heartbeats go to (they differ only for a moment during a failover)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.info("server")
            pipe.pubsub_numsub(self._channel)
            server, [(_channel, subscribers)] = await pipe.execute()
        self._state.life_run_id = server["run_id"] if subscribers > 0 else ""
        if self._state.life_run_id:
            await beat(self._redis, self._state, ttl_s=self._heartbeat_ttl_s)
