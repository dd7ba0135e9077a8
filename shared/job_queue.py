"""The job queue: submitting jobs, their attempts, starting, finishing and cancelling them.

Each ccfleet job has a record (`keys.job_record`) naming its current attempt and the worker
running it; each attempt is one arq job (`AttemptId`). Front ends submit and cancel jobs and
re-queue those whose worker died before answering; workers start, finish and re-queue them
(another account after a limit or a transient upstream error). Only the current attempt may
run: a stale one (arq re-running it after a crash, say) is refused by `start`.

Lanes share one arq queue and are ordered by score: interactive jobs are scored six hours in
the past (docs/measured-facts.md §5), so every waiting interactive job comes before any batch
job; within a lane, first come first served. A re-queued attempt keeps its job's score, so it
goes ahead of newer work.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, cast

from arq.connections import ArqRedis
from arq.constants import abort_jobs_ss

from shared import keys
from shared.errors import Overloaded
from shared.fleet import Lane
from shared.jobs import RUN_MESSAGES_JOB, AttemptId, JobRequest
from shared.messages import MessagesRequest

INTERACTIVE_HEAD_START_MS = 6 * 3600 * 1000
_ARQ_EXPIRES = timedelta(days=1)

JobStatus = Literal["waiting", "running", "done", "cancelled"]

# The record changes below are compare-and-set on the attempt number, atomic in Redis.
_START = """
local r = redis.call('HMGET', KEYS[1], 'attempt', 'status')
if not r[1] or tonumber(r[1]) ~= tonumber(ARGV[1]) then return 0 end
if r[2] ~= 'waiting' and r[2] ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'running', 'worker', ARGV[2], 'started_at_ms', ARGV[4])
redis.call('ZREM', KEYS[2], ARGV[3])
return 1
"""
_FINISH = """
local attempt = redis.call('HGET', KEYS[1], 'attempt')
if not attempt or tonumber(attempt) ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'status', 'done')
return 1
"""
_ADVANCE = """
local r = redis.call('HMGET', KEYS[1], 'attempt', 'status')
if not r[1] or tonumber(r[1]) ~= tonumber(ARGV[1]) or r[2] == 'cancelled' then return 0 end
redis.call('HSET', KEYS[1], 'attempt', ARGV[2], 'attempt_id', ARGV[3], 'avoid', ARGV[4],
           'worker', '', 'status', 'waiting')
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[5])
return 1
"""


@dataclass(frozen=True)
class JobState:
    """The small fields of a job's record (not its request, which may be 32 MB)."""

    status: JobStatus
    worker: str
    attempt_id: str
    lane: Lane
    enqueued_at_ms: int


@dataclass(frozen=True)
class JobRecord:
    job: JobRequest  # as of its current attempt
    status: JobStatus
    worker: str
    attempt_id: str


class JobQueue:
    def __init__(self, pool: ArqRedis, *, queue_name: str, record_ttl_s: int) -> None:
        self._pool = pool
        self._queue_name = queue_name
        self._record_ttl_s = record_ttl_s
        self._start_script = pool.register_script(_START)
        self._finish_script = pool.register_script(_FINISH)
        self._advance_script = pool.register_script(_ADVANCE)

    async def submit(
        self,
        request: MessagesRequest,
        *,
        request_id: str,
        lane: Lane,
        lane_limit: int,
        prefer_account: str = "",
        prefer_for_ms: int = 0,
    ) -> JobRequest:
        """Queue a new job; a full lane is 529 overloaded_error. `prefer_account`'s workers
        get the job to themselves for `prefer_for_ms` (shared/conversation.py)."""
        await self._ensure_room(lane, lane_limit)
        now_ms = int(time.time() * 1000)
        head_start = INTERACTIVE_HEAD_START_MS if lane == "interactive" else 0
        job = JobRequest(
            job_id="job_" + uuid.uuid4().hex,
            request_id=request_id,
            request=request,
            enqueued_at_ms=now_ms,
            lane=lane,
            priority_ms=now_ms - head_start,
            prefer_account=prefer_account,
            prefer_until_ms=now_ms + prefer_for_ms if prefer_account else 0,
        )
        await self._write_record(job, payload=True)
        await self._enqueue(job)
        return job

    async def requeue(self, job: JobRequest, *, avoid_accounts: list[str]) -> JobRequest | None:
        """Queue the next attempt of `job`, unless another attempt has taken over already."""
        following = job.model_copy(
            update={
                "attempt": job.attempt + 1,
                "avoid_accounts": sorted(set(avoid_accounts)),
                "prefer_account": "",  # a retry goes to whichever account can take it
                "prefer_until_ms": 0,
            }
        )
        if not await self._advance(job, following):
            return None
        await self._enqueue(following)
        return following

    async def start(self, job: JobRequest, worker_id: str) -> bool:
        """Claim the job for a worker; False if this attempt is stale or was cancelled."""
        claimed = await self._start_script(
            keys=[keys.job_record(job.job_id), keys.lane_waiting(job.lane)],
            args=[job.attempt, worker_id, job.job_id, int(time.time() * 1000)],
        )
        return bool(claimed)

    async def finish(self, job: JobRequest) -> None:
        await self._finish_script(keys=[keys.job_record(job.job_id)], args=[job.attempt])

    async def cancel(self, job_id: str) -> None:
        """Abort the current attempt (the worker kills its CLI) and take the job off its lane."""
        state = await self.state(job_id)
        if state is None or state.status in ("done", "cancelled"):
            return
        async with self._pool.pipeline(transaction=True) as pipe:
            pipe.zadd(abort_jobs_ss, {state.attempt_id: int(time.time() * 1000)})
            pipe.hset(keys.job_record(job_id), "status", "cancelled")
            pipe.zrem(keys.lane_waiting(state.lane), job_id)
            pipe.publish(keys.queue_wake_channel(), b"abort")
            await pipe.execute()

    async def state(self, job_id: str) -> JobState | None:
        fields = ("status", "worker", "attempt_id", "lane", "enqueued_at_ms")
        raw: list[bytes | None] = await self._pool.hmget(keys.job_record(job_id), list(fields))  # type: ignore[misc]  # redis-py 5 types it sync-or-async
        if raw[0] is None:
            return None
        status, worker, attempt_id, lane, enqueued_at_ms = (v.decode() if v else "" for v in raw)
        return JobState(
            status=cast(JobStatus, status),
            worker=worker,
            attempt_id=attempt_id,
            lane="batch" if lane == "batch" else "interactive",
            enqueued_at_ms=int(enqueued_at_ms or 0),
        )

    async def record(self, job_id: str) -> JobRecord | None:
        raw: dict[bytes, bytes] = await self._pool.hgetall(keys.job_record(job_id))  # type: ignore[misc]  # redis-py 5 types it sync-or-async
        if not raw or b"payload" not in raw:
            return None
        first = JobRequest.model_validate_json(raw[b"payload"])
        avoid = [name for name in raw.get(b"avoid", b"").decode().split(",") if name]
        job = first.model_copy(update={"attempt": int(raw[b"attempt"]), "avoid_accounts": avoid})
        status = cast(JobStatus, raw[b"status"].decode())  # written only by this module
        return JobRecord(
            job=job,
            status=status,
            worker=raw.get(b"worker", b"").decode(),
            attempt_id=raw[b"attempt_id"].decode(),
        )

    async def _ensure_room(self, lane: Lane, lane_limit: int) -> None:
        waiting = keys.lane_waiting(lane)
        stale_before_ms = int((time.time() - self._record_ttl_s) * 1000)
        async with self._pool.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(waiting, 0, stale_before_ms)  # heals entries nobody removed
            pipe.zcard(waiting)
            _, count = await pipe.execute()
        if count >= lane_limit:
            raise Overloaded(f"The {lane} queue is full; try again shortly.", retry_after_s=5)

    async def _write_record(self, job: JobRequest, *, payload: bool) -> None:
        key = keys.job_record(job.job_id)
        fields: dict[str, str | int] = {
            "attempt": job.attempt,
            "attempt_id": str(AttemptId.of(job)),
            "avoid": ",".join(job.avoid_accounts),
            "worker": "",
            "status": "waiting",
        }
        if payload:
            fields["payload"] = job.model_dump_json(exclude_unset=True)
            fields["lane"] = job.lane
            fields["enqueued_at_ms"] = job.enqueued_at_ms
        async with self._pool.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.expire(key, self._record_ttl_s)
            pipe.zadd(keys.lane_waiting(job.lane), {job.job_id: job.enqueued_at_ms})
            await pipe.execute()

    async def _advance(self, current: JobRequest, following: JobRequest) -> bool:
        """Compare-and-set the record from `current`'s attempt to `following`'s."""
        advanced = await self._advance_script(
            keys=[keys.job_record(current.job_id), keys.lane_waiting(following.lane)],
            args=[
                current.attempt,
                following.attempt,
                str(AttemptId.of(following)),
                ",".join(following.avoid_accounts),
                following.job_id,
                following.enqueued_at_ms,
            ],
        )
        return bool(advanced)

    async def _enqueue(self, job: JobRequest) -> None:
        arq_job = await self._pool.enqueue_job(
            RUN_MESSAGES_JOB,
            job.model_dump(mode="json", exclude_unset=True) | _attempt_fields(job),
            _job_id=str(AttemptId.of(job)),
            _queue_name=self._queue_name,
            _defer_until=datetime.fromtimestamp(job.priority_ms / 1000, tz=UTC),
            _expires=_ARQ_EXPIRES,
        )
        if arq_job is None:
            raise Overloaded("Could not queue the request; try again.", retry_after_s=1)
        await self._pool.publish(keys.queue_wake_channel(), b"queued")


def _attempt_fields(job: JobRequest) -> dict[str, object]:
    # exclude_unset drops defaults: the attempt's own fields must always travel.
    return {
        "lane": job.lane,
        "priority_ms": job.priority_ms,
        "attempt": job.attempt,
        "avoid_accounts": job.avoid_accounts,
        "prefer_account": job.prefer_account,
        "prefer_until_ms": job.prefer_until_ms,
    }
