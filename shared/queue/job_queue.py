"""The job queue: submitting jobs, their attempts, starting, finishing and cancelling them.

Each ccfleet job has a record (`redis_keys.job_record`) naming its current attempt and the worker
running it; each attempt is one arq job (`AttemptId`). Front ends submit and cancel jobs and
re-queue those whose worker died before answering; workers start, finish and re-queue them
(another account after a limit or a transient upstream error). Only the current attempt may
run: a stale one (arq re-running it after a crash, say) is refused by `start`.

A record lives as long as its job may still need it (`JobLifetimes`): while it waits, its
lane's longest wait and a run; while it runs, a run; once it ended, as long as its chunks
(the journal TTL), so a stream can be resumed. Every change of phase sets its TTL anew.

Lanes share one arq queue and are ordered by score: interactive jobs are scored six hours in
the past (their head start, shared/fleet/lanes.py), so every waiting interactive job comes
before any batch job; within a lane, first come first served. A re-queued attempt keeps its
job's score, so it goes ahead of newer work.

Submitting is one script (room in the lane and in Redis checked, then record, lane entry and
arq job written together) and so is re-queueing, so a job is counted in its lane only if its
arq job exists: a request that cannot be queued leaves nothing behind. The arq job is
written as arq's `enqueue_job` writes it (arq 0.28: `arq:job:<id>` holding `serialize_job`'s
bytes, scored in the queue's sorted set; shared/queue/arq_adapter.py names arq's keys).

Redis memory: the request (up to 32 MB) lives in the record and in the arq job while the job
waits. The record's copy is dropped once no retry can need it (the first chunk is published,
or the job ends), arq drops its own when the attempt ends (results are not kept), and a job
whose copies would not fit the memory budget is refused before anything is written.
"""

from __future__ import annotations

import itertools
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

from redis.asyncio import Redis

from shared.broker import redis_keys
from shared.broker.lua_script import LuaScript
from shared.errors import Overloaded
from shared.fleet.lanes import Lane, LanePolicies, lane_policies
from shared.queue import arq_adapter
from shared.queue.job import RUN_MESSAGES_JOB, AttemptId, BatchItem, JobRequest
from shared.settings import Settings
from shared.stream import journal
from shared.stream.chunk import Chunk
from shared.wire.messages import MessagesRequest

_DEFAULT_BUDGET_SHARE = 0.8  # of Redis's maxmemory, when no budget is configured

JobStatus = Literal["waiting", "running", "done", "cancelled"]

_SUBMIT = LuaScript.beside(__file__, "job_queue.submit.lua")
_CLAIM = LuaScript.beside(__file__, "job_queue.claim.lua", uses=[journal.LUA])
_RELEASE = LuaScript.beside(__file__, "job_queue.release.lua")
_FINISH = LuaScript.beside(__file__, "job_queue.finish.lua")
_ADVANCE = LuaScript.beside(__file__, "job_queue.advance.lua")


_RUN_MARGIN_S = 60.0
"""Beyond the time limit of a run: the CLI's kill grace, publishing the end, arq's own slack."""


@dataclass(frozen=True)
class JobLifetimes:
    """How long a job may still need its record, by phase (seconds)."""

    lanes: LanePolicies
    """Each lane's longest wait for a worker, which a waiting job's record outlives."""
    run_s: float
    kept_s: float
    """After the job ended: as long as its chunks, for resumes."""

    @classmethod
    def of(cls, settings: Settings) -> JobLifetimes:
        return cls(
            lanes=lane_policies(settings),
            run_s=settings.jobs.timeout_s + _RUN_MARGIN_S,
            kept_s=settings.journal.ttl_s,
        )

    def waiting_s(self, lane: Lane) -> int:
        return math.ceil(self.lanes[lane].max_wait_s + self.run_s + self.kept_s)

    def running_s(self) -> int:
        return math.ceil(self.run_s + self.kept_s)

    def ended_s(self) -> int:
        return math.ceil(self.kept_s)


@dataclass(frozen=True)
class JobState:
    """The small fields of a job's record (not its request, which may be 32 MB)."""

    status: JobStatus
    worker: str
    attempt_id: str
    lane: Lane
    enqueued_at_ms: int
    client_key: str
    """The name of the client key it was sent with ("": none), whose quotas it holds."""
    request_id: str

    FIELDS: ClassVar[tuple[str, ...]] = (
        "status",
        "worker",
        "attempt_id",
        "lane",
        "enqueued_at_ms",
        "client_key",
        "request_id",
    )

    @classmethod
    def parse(cls, raw: list[bytes | None]) -> JobState | None:
        """From the record's FIELDS, as HMGET returns them; None if there is no record."""
        if raw[0] is None:
            return None
        status, worker, attempt_id, lane, enqueued_at_ms, client_key, request_id = (
            v.decode() if v else "" for v in raw
        )
        return cls(
            status=cast(JobStatus, status),
            worker=worker,
            attempt_id=attempt_id,
            lane="batch" if lane == "batch" else "interactive",
            enqueued_at_ms=int(float(enqueued_at_ms or 0)),
            client_key=client_key,
            request_id=request_id,
        )


ClaimOutcome = Literal["claimed", "stale", "taken", "behind", "cooling"]


@dataclass(frozen=True)
class Claim:
    """What `JobQueue.claim` did. arq runs a `claimed` attempt, and a `stale` one too (it is
    not its job's current attempt, or the job was cancelled: it ends at once)."""

    outcome: ClaimOutcome
    score: int = 0
    """The attempt's score in arq's queue, which arq's `run_job` wants."""
    last_chunk: Chunk | None = None
    """Claimed: the newest chunk already journaled (by an earlier run of this attempt)."""
    cooling_until: float = 0.0
    """Refused as `cooling`: until when the account cools (epoch seconds)."""

    @property
    def runs(self) -> bool:
        return self.outcome in ("claimed", "stale")


@dataclass(frozen=True)
class JobRecord:
    job: JobRequest  # as of its current attempt
    status: JobStatus
    worker: str
    attempt_id: str


class JobQueue:
    def __init__(
        self,
        pool: Redis,
        *,
        queue_name: str,
        lifetimes: JobLifetimes,
        memory_budget_bytes: int = 0,
    ) -> None:
        self._pool = pool
        self._queue_name = queue_name
        self.lifetimes = lifetimes
        # 0: a share of Redis's own maxmemory, if it has one; else no check.
        self._memory_budget_bytes = memory_budget_bytes
        self._submit_script = _SUBMIT.bind(pool)
        self._claim_script = _CLAIM.bind(pool)
        self._release_script = _RELEASE.bind(pool)
        self._finish_script = _FINISH.bind(pool)
        self._advance_script = _ADVANCE.bind(pool)

    async def submit(
        self,
        request: MessagesRequest,
        *,
        request_id: str,
        lane: Lane,
        lane_limit: int,
        owner: dict[str, str] | None = None,
        client_key: str | None = None,
        prefer_account: str = "",
        prefer_for_ms: int = 0,
        prefer_worker: str = "",
        conversation: str = "",
        job_id: str | None = None,
        batch: BatchItem | None = None,
    ) -> JobRequest:
        """Queue a new job; a full lane or a full Redis is 529 overloaded_error.

        `owner` is kept in the record (small fields a resume must match, api/resume.py).
        `prefer_account`'s workers get the job to themselves for `prefer_for_ms`, and of them
        `prefer_worker` (shared/fleet/affinity.py); `conversation` is the conversation its client
        named, for the worker to note its account under."""
        now = time.time()
        now_ms = int(now * 1000)
        job = JobRequest(
            job_id=job_id or new_job_id(),
            request_id=request_id,
            request=request,
            enqueued_at_ms=now_ms,
            lane=lane,
            priority_ms=now_ms - self.lifetimes.lanes[lane].head_start_ms,
            client_key=client_key,
            prefer_account=prefer_account,
            prefer_until_ms=now_ms + prefer_for_ms if prefer_account else 0,
            prefer_worker=prefer_worker if prefer_account else "",
            conversation=conversation,
            batch=batch,
        )
        payload = job.model_dump_json(exclude_unset=True)
        arq_job = self._arq_job(job)
        attempt_id = str(AttemptId.of(job))
        record = {
            "attempt": job.attempt,
            "attempt_id": attempt_id,
            "avoid": "",
            "worker": "",
            "status": "waiting",
            "payload": payload,
            "lane": job.lane,
            "enqueued_at_ms": f"{now * 1000:.3f}",  # to the microsecond, for bench/ttft.py
            "client_key": client_key or "",
            "request_id": request_id,
            **(owner or {}),
        }
        waiting_s = self.lifetimes.waiting_s(lane)
        outcome = await self._submit_script(
            lane=redis_keys.lane_waiting(lane),
            record=redis_keys.job_record(job.job_id),
            arq_job=arq_adapter.job_key(attempt_id),
            arq_queue=self._queue_name,
            lane_limit=lane_limit,
            stale_before_ms=int((now - waiting_s) * 1000),
            memory_budget=self._memory_budget_bytes,
            budget_share=_DEFAULT_BUDGET_SHARE,
            job_bytes=len(payload) + len(arq_job),
            record_ttl_s=waiting_s,
            lane_score=job.enqueued_at_ms,
            job_id=job.job_id,
            arq_job_ttl_ms=waiting_s * 1000,
            serialized_job=arq_job,
            attempt_id=attempt_id,
            attempt_score=job.priority_ms,
            wake_channel=redis_keys.queue_wake_channel(),
            record_fields=list(itertools.chain.from_iterable(record.items())),
        )
        if outcome == b"lane full":
            raise Overloaded(f"The {lane} queue is full; try again shortly.", retry_after_s=5)
        if outcome == b"no memory":
            raise Overloaded(
                "The job queue has no room for this request now; try again shortly.",
                retry_after_s=5,
            )
        return job

    async def requeue(
        self,
        job: JobRequest,
        *,
        avoid_accounts: list[str],
        prefer_account: str = "",
        prefer_for_ms: int = 0,
    ) -> JobRequest | None:
        """Queue the next attempt of `job`, unless another attempt has taken over already;
        `prefer_account`'s workers get a head start of `prefer_for_ms` (else none has one)."""
        now_ms = int(time.time() * 1000)
        following = job.model_copy(
            update={
                "attempt": job.attempt + 1,
                "avoid_accounts": sorted(set(avoid_accounts)),
                "prefer_account": prefer_account,
                "prefer_until_ms": now_ms + prefer_for_ms if prefer_account else 0,
                "prefer_worker": "",  # a retry replays wherever it runs
            }
        )
        if not await self._advance(job, following):
            return None
        await self._pool.publish(redis_keys.queue_wake_channel(), str(AttemptId.of(following)))
        return following

    async def claim(
        self,
        attempt_id: str,
        *,
        worker_id: str,
        account: str,
        in_progress_ms: int,
        first_only: bool = False,
    ) -> Claim:
        """Start an attempt on a worker of `account`, in one script: refused while the account
        cools, or when the attempt runs elsewhere, left arq's queue or is not due yet; else
        marked in progress as arq's own `start_jobs` marks it (`in_progress_ms`), and, if it
        is its job's current attempt, the record says it runs on `worker_id`.

        `first_only` (an attempt announced on the wake channel, claimed without reading the
        queue): refused as `behind` if an older job waits in its lane, or any interactive
        job waits before a batch one (the lanes list waiting jobs only; arq's queue also
        holds running ones), so the worker reads the queue instead."""
        attempt = AttemptId.parse(attempt_id)
        if attempt is None:
            return Claim("taken")
        now_s = time.time()
        now_ms = int(now_s * 1000)
        outcome, score, *last = await self._claim_script(
            arq_in_progress=arq_adapter.in_progress_key(attempt_id),
            arq_queue=self._queue_name,
            account=redis_keys.account_state(account),
            record=redis_keys.job_record(attempt.job_id),
            lane=redis_keys.lane_waiting(attempt.lane),
            journal=redis_keys.job_journal(attempt.job_id),
            interactive_lane=redis_keys.lane_waiting("interactive"),
            attempt_id=attempt_id,
            now_ms=now_ms,
            now_s=now_s,
            in_progress_ms=in_progress_ms,
            first_only=int(first_only),
            attempt=attempt.attempt,
            worker_id=worker_id,
            job_id=attempt.job_id,
            record_ttl_s=self.lifetimes.running_s(),
        )
        outcome = outcome.decode()
        if outcome == "cooling":
            return Claim("cooling", cooling_until=float(score))
        if outcome not in ("claimed", "stale"):
            return Claim(cast(ClaimOutcome, outcome))
        last_chunk = Chunk.from_json(last[0]) if last else None
        return Claim(cast(ClaimOutcome, outcome), score=int(float(score)), last_chunk=last_chunk)

    async def release(self, attempt: AttemptId, worker_id: str) -> None:
        """Undo a claim whose attempt arq ended without running it (its arq job expired, or
        ran out of tries): the job waits again, so a relay ends it once it waited too long."""
        await self._release_script(
            record=redis_keys.job_record(attempt.job_id),
            lane=redis_keys.lane_waiting(attempt.lane),
            attempt=attempt.attempt,
            worker_id=worker_id,
            job_id=attempt.job_id,
            record_ttl_s=self.lifetimes.waiting_s(attempt.lane),
        )

    async def finish(self, job: JobRequest, *, handed_off_at: float = 0.0) -> None:
        """The job ended; `handed_off_at` (epoch seconds), when its CLI got the request, is
        kept beside `enqueued_at_ms` for the dispatch benchmark (bench/ttft.py)."""
        handed_off_ms = f"{handed_off_at * 1000:.3f}" if handed_off_at else ""
        await self._finish_script(
            record=redis_keys.job_record(job.job_id),
            attempt=job.attempt,
            record_ttl_s=self.lifetimes.ended_s(),
            handed_off_at_ms=handed_off_ms,
        )

    async def cancel(self, job_id: str, *, unqueue: bool = False) -> JobState | None:
        """Abort the current attempt (the worker kills its CLI) and take the job off its lane.
        `unqueue` also takes it out of arq's queue: arq keeps the job of a dead worker there
        until the job timeout, where it would take a batch slot in every worker's pick.
        The job's state before, if this cancelled it (`waiting`: no worker will ever run it)."""
        state = await self.state(job_id)
        if state is None or state.status in ("done", "cancelled"):
            return None
        async with self._pool.pipeline(transaction=True) as pipe:
            arq_adapter.abort(pipe, state.attempt_id, asked_at_ms=int(time.time() * 1000))
            pipe.hset(redis_keys.job_record(job_id), "status", "cancelled")
            pipe.hdel(redis_keys.job_record(job_id), "payload")
            pipe.expire(redis_keys.job_record(job_id), self.lifetimes.ended_s())
            pipe.zrem(redis_keys.lane_waiting(state.lane), job_id)
            pipe.publish(redis_keys.queue_wake_channel(), b"abort")
            if unqueue:
                pipe.zrem(self._queue_name, state.attempt_id)
            await pipe.execute()
        return state

    async def state(self, job_id: str) -> JobState | None:
        raw = await self._pool.hmget(redis_keys.job_record(job_id), list(JobState.FIELDS))  # type: ignore[misc]  # redis-py 5 types it sync-or-async
        return JobState.parse(raw)

    async def owner(self, job_id: str) -> dict[str, str] | None:
        """The owner fields `submit` kept with the job (digest, client); None if unknown."""
        raw: list[bytes | None] = await self._pool.hmget(  # type: ignore[misc]  # redis-py 5 types it sync-or-async
            redis_keys.job_record(job_id), ["status", "digest", "client"]
        )
        if raw[0] is None:
            return None
        return {"digest": (raw[1] or b"").decode(), "client": (raw[2] or b"").decode()}

    async def record(self, job_id: str) -> JobRecord | None:
        raw: dict[bytes, bytes] = await self._pool.hgetall(redis_keys.job_record(job_id))  # type: ignore[misc]  # redis-py 5 types it sync-or-async
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

    async def _advance(self, current: JobRequest, following: JobRequest) -> bool:
        """Compare-and-set the record from `current`'s attempt to `following`'s, and queue
        `following`'s arq job, in one script."""
        attempt_id = str(AttemptId.of(following))
        advanced = await self._advance_script(
            record=redis_keys.job_record(current.job_id),
            lane=redis_keys.lane_waiting(following.lane),
            arq_job=arq_adapter.job_key(attempt_id),
            arq_queue=self._queue_name,
            attempt=current.attempt,
            next_attempt=following.attempt,
            attempt_id=attempt_id,
            avoid=",".join(following.avoid_accounts),
            job_id=following.job_id,
            lane_score=following.enqueued_at_ms,
            serialized_job=self._arq_job(following),
            arq_job_ttl_ms=self.lifetimes.waiting_s(following.lane) * 1000,
            attempt_score=following.priority_ms,
            record_ttl_s=self.lifetimes.waiting_s(following.lane),
        )
        return bool(advanced)

    def _arq_job(self, job: JobRequest) -> bytes:
        """The attempt's arq job, serialized as `ArqRedis.enqueue_job` would."""
        payload = job.model_dump(mode="json", exclude_unset=True) | _attempt_fields(job)
        return arq_adapter.serialized_job(
            RUN_MESSAGES_JOB, payload, enqueued_ms=int(time.time() * 1000)
        )


def over_memory_budget(memory: dict[str, Any], *, budget_bytes: int, cost: int) -> bool:
    """Would `cost` more bytes push Redis (its INFO memory) past the budget? A budget of 0 is
    80 % of Redis's maxmemory; no check when Redis has none either."""
    budget = budget_bytes or int(int(memory.get("maxmemory", 0)) * _DEFAULT_BUDGET_SHARE)
    return bool(budget) and int(memory["used_memory"]) + cost > budget


def new_job_id() -> str:
    return "job_" + uuid.uuid4().hex


def _attempt_fields(job: JobRequest) -> dict[str, object]:
    # exclude_unset drops defaults: the attempt's own fields must always travel.
    return {
        "lane": job.lane,
        "priority_ms": job.priority_ms,
        "attempt": job.attempt,
        "avoid_accounts": job.avoid_accounts,
        "prefer_account": job.prefer_account,
        "prefer_until_ms": job.prefer_until_ms,
        "prefer_worker": job.prefer_worker,
    }
