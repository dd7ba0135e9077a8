"""Whether a worker lives: its heartbeat, and a life line that closes when its process dies.

A worker beats every `heartbeat_interval_s` into a hash that expires after `heartbeat_ttl_s`
(worker/heartbeat.py). That alone finds a dead worker only once the hash expired: 10 s by
default, which must outlast a Redis outage within its grace (a shorter one would make every
worker look dead when Redis comes back). So each worker also holds a life line
(worker/life_line.py): a subscription, on its own connection, to a channel nobody else
subscribes to. When the worker's process dies, however it dies, its kernel closes the
connection and Redis drops the subscription at once; `PUBSUB NUMSUB` then counts 0. A quiet
line costs Redis nothing (no command while idle, a PING a health-check period).

The rule, one Lua function (liveness.lua) so every reader applies the same one: a worker
lives while its heartbeat exists and, if the heartbeat names a life line, someone holds it.
A restart or failover of Redis ends every subscription, so the heartbeat names the line with
the `run_id` of the server it was opened on (field `life_run_id`, written once the line is
confirmed there): on another server the line does not count until the worker opens it again,
and the heartbeat alone decides meanwhile. What the line cannot see (a host that vanishes
without closing its connections, a worker hung but not dead) the heartbeat's TTL still finds.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from shared.broker import redis_keys
from shared.broker.lua_script import LuaLibrary, LuaScript

LUA = LuaLibrary.beside(__file__, "liveness.lua")
"""`worker_alive(heartbeat_prefix, life_prefix, worker_id)`, for scripts that ask."""

_ALIVE = LuaScript.beside(__file__, "liveness.alive.lua", uses=[LUA])
_LIVE = LuaScript.beside(__file__, "liveness.live.lua", uses=[LUA])

LIFE_RUN_ID_FIELD = "life_run_id"
"""The heartbeat's field naming the server (its run_id) on which the life line is held
(liveness.lua reads it by this name)."""


def prefixes() -> dict[str, str]:
    """The names a liveness script builds a worker's keys from (add the worker's id)."""
    return {
        "heartbeat_prefix": redis_keys.worker_heartbeat(""),
        "life_prefix": redis_keys.worker_life_channel(""),
    }


async def worker_alive(redis: Redis, worker_id: str) -> bool:
    return bool(await _ALIVE.bind(redis)(worker_id=worker_id, **prefixes()))


async def live_worker_ids(redis: Redis, *, heartbeat_ttl_s: float) -> list[str]:
    """The workers that beat within `heartbeat_ttl_s` and live."""
    oldest_ms = int((time.time() - heartbeat_ttl_s) * 1000)
    ids: list[bytes] = await _LIVE.bind(redis)(
        index=redis_keys.workers_index(), oldest_ms=oldest_ms, **prefixes()
    )
    return [worker_id.decode() for worker_id in ids]
