"""The worker's heartbeat: its registration in Redis, refreshed until it stops. It names the
server the worker's life line is held on (worker/life_line.py, shared/fleet/liveness.py)."""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.broker import redis_keys
from shared.fleet.liveness import LIFE_RUN_ID_FIELD
from shared.fleet.registry import account_cooling_until
from worker.context import WorkerState

logger = logging.getLogger(__name__)


async def read_account_cooldown(redis: Redis, state: WorkerState) -> None:
    """Take on the account's cooldown: another worker of the account (a replica, or this
    worker before a restart) may have met its limit. The account's key is the truth, so an
    operator lifts a cooldown by deleting it."""
    state.cooling_until = await account_cooling_until(redis, state.account)


async def beat(redis: Redis, state: WorkerState, *, ttl_s: float) -> None:
    await read_account_cooldown(redis, state)
    now_ms = int(time.time() * 1000)
    info_key = redis_keys.worker_heartbeat(state.worker_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(
            info_key,
            mapping={
                "id": state.worker_id,
                "host": state.host,
                "account": state.account,
                "slots": state.slots,
                "busy": state.busy,
                "busy_batch": state.busy_batch,
                "state": state.state,
                "cooling_until": state.cooling_until,
                "cli_version": state.cli_version,
                "last_error": state.last_error,
                "broken_reason": state.broken_reason,
                "started_at_ms": state.started_at_ms,
                "monthly_usd": state.monthly_usd,
                "priority": state.priority,
                "ready_clis": state.ready_clis.ready,
                "ready_hits": state.ready_clis.hits,
                "ready_misses": state.ready_clis.misses,
                "resident_clis": state.resident_clis.resident,
                "resident_bytes": state.resident_clis.rss_bytes,
                "resident_hits": state.resident_clis.hits,
                "resident_misses": state.resident_clis.misses,
                "beat_at_ms": now_ms,
                LIFE_RUN_ID_FIELD: state.life_run_id,
            },
        )
        pipe.pexpire(info_key, int(ttl_s * 1000))
        pipe.zadd(redis_keys.workers_index(), {state.worker_id: now_ms})
        # Forget workers that stopped beating long ago.
        pipe.zremrangebyscore(redis_keys.workers_index(), 0, now_ms - int(ttl_s * 1000) * 6)
        await pipe.execute()


async def beat_forever(
    redis: Redis, state: WorkerState, *, interval_s: float, ttl_s: float
) -> None:
    """Owned by the worker's start-up/shut-down hooks; survives Redis outages."""
    while True:
        try:
            await beat(redis, state, ttl_s=ttl_s)
        except (RedisError, OSError) as exc:
            logger.warning("heartbeat failed: %s", type(exc).__name__)
        await asyncio.sleep(interval_s)


async def unregister(redis: Redis, state: WorkerState) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(redis_keys.worker_heartbeat(state.worker_id))
        pipe.zrem(redis_keys.workers_index(), state.worker_id)
        await pipe.execute()
