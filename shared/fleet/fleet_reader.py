"""The fleet read for a process's many callers at once: those asking while a read is in flight
share the next one (shared/broker/coalesced_calls.py).

A thousand requests arriving together each ask, at admission, whether the fleet can serve them,
and each waiting job's relay asks again when it goes quiet: read one by one, that is two round
trips and a parse of every worker's heartbeat per caller (6 % of a front end's CPU at 1,000
streams starting at once, bench/many_streams.py). No caller gets a read that started before
it asked.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from shared.broker.coalesced_calls import CoalescedCalls
from shared.fleet.registry import FleetSnapshot, read_fleet


class FleetReader:
    def __init__(self, redis: Redis, *, heartbeat_ttl_s: float) -> None:
        self._redis = redis
        self._heartbeat_ttl_s = heartbeat_ttl_s
        self._reads: CoalescedCalls[None, FleetSnapshot] = CoalescedCalls(self._read)

    async def __call__(self) -> FleetSnapshot:
        return await self._reads(None)

    async def _read(self, asks: Sequence[None]) -> list[FleetSnapshot]:
        fleet = await read_fleet(self._redis, heartbeat_ttl_s=self._heartbeat_ttl_s)
        return [fleet] * len(asks)
