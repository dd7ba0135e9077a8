"""Message batches in Redis: create, read, page, take the next request, record results, end.

Per batch four keys (shared/broker/redis_keys.py): its hash (state and counts), its requests
by index (each `{"custom_id", "params"}` held once, dropped when its result is written), its results
by index (written as each request finishes), and its in-flight requests (index -> job id).
Every change of counts is one Lua script, so counts and results never disagree, and the
batch ends (status `ended`, kept `retention_s` longer) in the same step as its last result.

Requests that never run (the batch was canceled or expired first) get no stored result: the
batch's `fill` says which type they have, and `awaiting` how many there were.

Dispatch is round-robin: `take_next` rotates the list of batches with requests still to run
(`redis_keys.batches_active`) and takes the next request of the batch at its head.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from itertools import islice

import orjson
from redis.asyncio import Redis

from shared.batches.wire import BatchState, never_ran, result_line
from shared.broker import redis_keys
from shared.broker.lua_script import LuaLibrary, LuaScript
from shared.errors import Overloaded
from shared.queue.job_queue import over_memory_budget

_WRITE_CHUNK = 2000
# Redis bytes per byte of a create body (bench/batches.py: 203 bytes for a 153-byte request).
_BYTES_PER_BODY_BYTE = 1.4

_END_IF_DONE = LuaLibrary.beside(__file__, "store.end_if_done.lua")
_RECORD = LuaScript.beside(__file__, "store.record.lua", uses=[_END_IF_DONE])
_STOP_WAITING = LuaScript.beside(__file__, "store.stop_waiting.lua", uses=[_END_IF_DONE])
_TAKE_NEXT = LuaScript.beside(__file__, "store.take_next.lua")
_UNCLAIM = LuaScript.beside(__file__, "store.unclaim.lua")


@dataclass(frozen=True)
class NewBatch:
    id: str
    owner: str  # the client key's name (usage and spend are booked by name)
    created_at_ms: int
    expires_at_ms: int
    owner_id: str = ""  # the client key's id: who may see the batch ("" with auth off)


@dataclass(frozen=True)
class StoredRequest:
    """One request of a new batch: its JSON, and its result if it was refused already."""

    index: int
    body: bytes
    refused: bytes | None = None


@dataclass(frozen=True)
class TakenRequest:
    batch_id: str
    index: int
    body: bytes
    owner: str  # the key's name, which usage is booked under
    owner_id: str  # the key's immutable id: a new key of the same name is not the owner


@dataclass(frozen=True)
class InflightEntry:
    index: int
    job_id: str
    claimed_at_ms: int
    runs: int = 1  # how many jobs it has had (a lost one runs again as a new job)


class BatchStore:
    def __init__(self, redis: Redis, *, retention_s: float, memory_budget_bytes: int = 0) -> None:
        self._redis = redis
        self._retention_ms = int(retention_s * 1000)
        self._memory_budget_bytes = memory_budget_bytes
        self._record = _RECORD.bind(redis)
        self._stop_waiting = _STOP_WAITING.bind(redis)
        self._take_next = _TAKE_NEXT.bind(redis)
        self._unclaim = _UNCLAIM.bind(redis)

    # -- creating ----------------------------------------------------------------------
    async def ensure_room(self, body_bytes: int) -> None:
        """529 if a batch of this size would push Redis past its memory budget."""
        memory = await self._redis.info("memory")
        cost = int(body_bytes * _BYTES_PER_BODY_BYTE)
        if over_memory_budget(memory, budget_bytes=self._memory_budget_bytes, cost=cost):
            raise Overloaded(
                "Redis has no room for this batch now; try again later or send a smaller one.",
                retry_after_s=60,
            )

    async def create(self, batch: NewBatch, requests: Iterable[StoredRequest]) -> BatchState:
        """Write the requests in chunks, then the batch itself: until that last step the
        batch does not exist, and a front end dying mid-way leaves keys that expire. Written
        again (its first try's reply lost to a Redis restart), a batch that exists is kept as
        it is: its requests may be running already."""
        if (state := await self.get(batch.id)) is not None:
            return state
        ttl_ms = batch.expires_at_ms - batch.created_at_ms + self._retention_ms
        count = refused = 0
        entries = iter(requests)
        while chunk := list(islice(entries, _WRITE_CHUNK)):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hset(
                    redis_keys.batch_requests(batch.id),
                    mapping={str(r.index): r.body for r in chunk},
                )
                failed = {str(r.index): r.refused for r in chunk if r.refused is not None}
                if failed:
                    pipe.hset(redis_keys.batch_results(batch.id), mapping=failed)
                for key in (
                    redis_keys.batch_requests(batch.id),
                    redis_keys.batch_results(batch.id),
                ):
                    pipe.pexpire(key, ttl_ms)
                await pipe.execute()
            count += len(chunk)
            refused += len(failed)
        awaiting = count - refused
        fields: dict[str, str | int] = {
            "id": batch.id,
            "owner": batch.owner,
            "owner_id": batch.owner_id,
            "status": "in_progress" if awaiting else "ended",
            "count": count,
            "awaiting": awaiting,
            "next": 0,
            "errored": refused,
            "created_at_ms": batch.created_at_ms,
            "expires_at_ms": batch.expires_at_ms,
            "ended_at_ms": 0 if awaiting else batch.created_at_ms,
            "fill": "",
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(redis_keys.batch(batch.id), mapping=fields)
            pipe.pexpire(redis_keys.batch(batch.id), ttl_ms if awaiting else self._retention_ms)
            pipe.zadd(redis_keys.batches_index(), {batch.id: batch.created_at_ms})
            if awaiting:
                pipe.rpush(redis_keys.batches_active(), batch.id)
                pipe.zadd(redis_keys.batches_open(), {batch.id: batch.expires_at_ms})
            await pipe.execute()
        state = await self.get(batch.id)
        assert state is not None  # just written
        return state

    # -- reading -----------------------------------------------------------------------
    async def get(self, batch_id: str) -> BatchState | None:
        raw: dict[bytes, bytes] = await self._redis.hgetall(redis_keys.batch(batch_id))  # type: ignore[misc]  # redis-py 5 types it sync-or-async
        return BatchState.from_hash(raw) if raw else None

    async def page(
        self, *, owner_id: str | None, before_id: str | None, after_id: str | None, limit: int
    ) -> tuple[list[BatchState], bool]:
        """Newest first: batches older than `after_id`, or newer than `before_id`.
        `owner_id` None: every batch (auth off, or an admin key)."""
        index = redis_keys.batches_index()
        if before_id is not None:
            rank = await self._redis.zrevrank(index, before_id)
            ids = await self._redis.zrevrange(index, 0, rank - 1) if rank else []
            ids.reverse()  # walk towards newer, nearest first
        else:
            start = 0
            if after_id is not None:
                rank = await self._redis.zrevrank(index, after_id)
                start = rank + 1 if rank is not None else 0
            ids = await self._redis.zrevrange(index, start, -1)
        found: list[BatchState] = []
        more = False
        for raw_id in ids:
            state = await self.get(raw_id.decode())
            if state is None:
                await self._redis.zrem(index, raw_id)  # its retention ran out
                continue
            if owner_id is not None and state.owner_id != owner_id:
                continue
            if len(found) == limit:
                more = True
                break
            found.append(state)
        if before_id is not None:
            found.reverse()
        return found, more

    async def results(self, state: BatchState) -> AsyncIterator[bytes]:
        """The result lines in request order, read a chunk at a time."""
        for start in range(0, state.count, _WRITE_CHUNK):
            indexes = [str(i) for i in range(start, min(start + _WRITE_CHUNK, state.count))]
            stored = await self._redis.hmget(redis_keys.batch_results(state.id), indexes)  # type: ignore[misc]  # redis-py 5 types it sync-or-async
            missing = [i for i, line in zip(indexes, stored, strict=True) if line is None]
            bodies = {}
            if missing:
                raw = await self._redis.hmget(redis_keys.batch_requests(state.id), missing)  # type: ignore[misc]  # redis-py 5 types it sync-or-async
                bodies = dict(zip(missing, raw, strict=True))
            for index, line in zip(indexes, stored, strict=True):
                if line is not None:
                    yield line
                elif (body := bodies.get(index)) is not None:
                    custom_id = orjson.loads(body)["custom_id"]
                    yield result_line(custom_id, never_ran(state.fill or "canceled"))

    async def inflight(self, batch_id: str) -> list[InflightEntry]:
        raw: dict[bytes, bytes] = await self._redis.hgetall(redis_keys.batch_inflight(batch_id))  # type: ignore[misc]  # redis-py 5 types it sync-or-async
        entries = []
        for index, value in raw.items():
            job_id, claimed, runs, *_ = [*value.decode().split("|"), "", ""]
            entries.append(InflightEntry(int(index), job_id, int(claimed or 0), int(runs or 1)))
        return entries

    async def any_open(self) -> bool:
        """Is any batch not yet ended? One read, for the idle workers' every tick."""
        return bool(await self._redis.zcard(redis_keys.batches_open()))

    async def open_batch_ids(self) -> list[str]:
        """Batches not yet ended; a batch gone for good (deleted, or its keys expired) is
        forgotten here."""
        ids = [raw.decode() for raw in await self._redis.zrange(redis_keys.batches_open(), 0, -1)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for batch_id in ids:
                pipe.exists(redis_keys.batch(batch_id))
            exists = await pipe.execute()
        gone = [batch_id for batch_id, found in zip(ids, exists, strict=True) if not found]
        if gone:
            await self._redis.zrem(redis_keys.batches_open(), *gone)
        return [batch_id for batch_id, found in zip(ids, exists, strict=True) if found]

    # -- changing ----------------------------------------------------------------------
    async def take_next(self, job_id: str) -> TakenRequest | None:
        """Claim the next request to run, round-robin between batches, for job `job_id`."""
        now_ms = int(time.time() * 1000)
        prefix = redis_keys.batch("")
        taken = await self._take_next(
            active=redis_keys.batches_active(),
            now=now_ms,
            claim=f"{job_id}|{now_ms}",
            batch_prefix=prefix,
            results_suffix=redis_keys.batch_results("").removeprefix(prefix),
            requests_suffix=redis_keys.batch_requests("").removeprefix(prefix),
            inflight_suffix=redis_keys.batch_inflight("").removeprefix(prefix),
        )
        if not taken:
            return None
        batch_id, index, body, owner, owner_id = taken
        return TakenRequest(
            batch_id.decode(), int(index), body, (owner or b"").decode(), (owner_id or b"").decode()
        )

    async def unclaim(self, batch_id: str, index: int) -> bool:
        """Give back a request `take_next` claimed but that was not queued: the next take of
        its batch takes it again. False if the batch stopped or it has a result meanwhile."""
        given_back = await self._unclaim(
            batch=redis_keys.batch(batch_id),
            results=redis_keys.batch_results(batch_id),
            inflight=redis_keys.batch_inflight(batch_id),
            active=redis_keys.batches_active(),
            id=batch_id,
            index=index,
        )
        return bool(given_back)

    async def reassign(self, batch_id: str, index: int, job_id: str, *, runs: int) -> None:
        """The request's job was lost: it runs as `job_id` now, its `runs`-th job."""
        now_ms = int(time.time() * 1000)
        value = f"{job_id}|{now_ms}|{runs}"
        await self._redis.hset(redis_keys.batch_inflight(batch_id), str(index), value)  # type: ignore[misc]  # redis-py 5 types it sync-or-async

    async def request_body(self, batch_id: str, index: int) -> bytes | None:
        body: bytes | None = await self._redis.hget(redis_keys.batch_requests(batch_id), str(index))  # type: ignore[misc]  # redis-py 5 types it sync-or-async
        return body

    async def record(
        self, batch_id: str, index: int, custom_id: str, result: dict[str, object]
    ) -> bool:
        """Persist one request's result; False if it had one already (or the batch is gone)."""
        recorded = await self._record(
            **self._script_keys(batch_id),
            index=index,
            line=result_line(custom_id, result),
            type=str(result["type"]),
            now=int(time.time() * 1000),
            retention=self._retention_ms,
        )
        return bool(recorded)

    async def cancel(self, batch_id: str) -> bool:
        """Requests not yet dispatched become `canceled`; True if this call canceled it."""
        return await self._stop(batch_id, fill="canceled", reason="cancel")

    async def expire(self, batch_id: str) -> bool:
        """Once due, requests not yet dispatched become `expired`; True if it expired now."""
        return await self._stop(batch_id, fill="expired", reason="expire")

    async def delete(self, batch_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(*self._keys(batch_id))
            pipe.zrem(redis_keys.batches_index(), batch_id)
            pipe.zrem(redis_keys.batches_open(), batch_id)
            pipe.lrem(redis_keys.batches_active(), 0, batch_id)
            await pipe.execute()

    async def _stop(self, batch_id: str, *, fill: str, reason: str) -> bool:
        stopped = await self._stop_waiting(
            **self._script_keys(batch_id),
            now=int(time.time() * 1000),
            retention=self._retention_ms,
            fill=fill,
            reason=reason,
        )
        return bool(stopped)

    @staticmethod
    def _script_keys(batch_id: str) -> dict[str, str]:
        """The KEYS of the scripts that may end a batch (store.end_if_done.lua)."""
        return {
            "batch": redis_keys.batch(batch_id),
            "results": redis_keys.batch_results(batch_id),
            "requests": redis_keys.batch_requests(batch_id),
            "inflight": redis_keys.batch_inflight(batch_id),
            "open": redis_keys.batches_open(),
        }

    @staticmethod
    def _keys(batch_id: str) -> list[str]:
        return [
            redis_keys.batch(batch_id),
            redis_keys.batch_results(batch_id),
            redis_keys.batch_requests(batch_id),
            redis_keys.batch_inflight(batch_id),
        ]
