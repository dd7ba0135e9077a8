"""The one adapter to arq (0.28): every use of arq's internals is in this module.

ccfleet queues and starts arq jobs itself, so that its own rules go with them: a job is
queued in one script with its record and lane entry (shared/queue/job_queue.py), and a worker
starts only the attempts it may take, claiming each in one script (worker/fleet_worker.py).
arq then runs them. That relies on arq's undocumented parts, named here and nowhere else:

- Its keys. An arq job is `arq:job:<id>` holding `serialize_job`'s bytes (`serialized_job`);
  the queue is a sorted set of job ids scored by when each is due (epoch ms), under the
  queue's name; a started job is marked by `arq:in-progress:<id>` (`in_progress_key`) for as
  long as it may run; a job to abort is a member of the sorted set `arq:abort` (`abort`),
  scored by when it was asked. The queue's scripts (job_queue.*.lua) write and read these
  keys as arq's `enqueue_job` and `start_jobs` do, given their names from here.
- Its worker's start-up (`Worker.main`: arq's INFO for its log line, the `on_startup` hook,
  then the poll loop, which burst mode ends), which `ArqWorker.main` re-does so that its
  Redis calls wait out an outage as every other call does (shared/broker/outage.py): arq's
  INFO would end the worker at the first refusal.
- Its worker's insides, which `ArqWorker` wraps in a few typed methods for its subclass:
  the slots (`sem`, `job_counter`, `max_jobs`), the tasks by job id (`tasks`), starting the
  jobs read from the queue (`start_jobs`), running one (`run_job`), one look at the queue
  (`_poll_iteration`), a slot set free (`_release_sem_dec_counter_on_complete`), and its
  signal handlers (`handle_sig`, `handle_sig_wait_for_completion`).
- How it calls a job: with its context dict (`ctx["job_id"]`, and what the worker's startup
  put there) and the job's arguments, which travel as JSON through our codec.

tests/unit/test_arq_adapter.py and tests/integration/test_arq_adapter.py pin each of these:
an arq upgrade that moves one fails there and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from signal import Signals
from typing import Any, TypeVar

import orjson
from arq.connections import ArqRedis, log_redis_info
from arq.constants import abort_jobs_ss, in_progress_key_prefix, job_key_prefix
from arq.jobs import serialize_job
from arq.utils import poll
from arq.worker import Worker, func
from redis.asyncio import ConnectionPool
from redis.asyncio.client import Pipeline

from shared.broker.outage import outlasting_outage

logger = logging.getLogger(__name__)

T = TypeVar("T")


# --- jobs as JSON --------------------------------------------------------------------------


class JobArgument(dict[str, Any]):
    """A job's argument (its request, up to 32 MB) as arq formats it: arq takes the `repr` of
    every argument of every job it starts for its log line, which for a 30 MB request holds
    the worker's loop for ~90 ms; the ids are all a log needs (and prompts are never logged)."""

    def __repr__(self) -> str:
        return f"<job {self.get('job_id')} attempt {self.get('attempt')}>"


def serialize(value: dict[str, Any]) -> bytes:
    """arq's job serializer: JSON, never pickles; front ends and workers use the same codec."""
    # arq also stores job results, which for a cancelled or failed job is an exception:
    # kept as its repr (nobody reads results back as objects).
    return orjson.dumps(value, default=repr)


def deserialize(raw: bytes) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(raw)
    arguments = value.get("a")
    if isinstance(arguments, list):  # a job, as arq's `serialize_job` wrote it
        value["a"] = [JobArgument(a) if isinstance(a, dict) else a for a in arguments]
    return value


def serialized_job(function: str, payload: dict[str, Any], *, enqueued_ms: int) -> bytes:
    """The arq job calling `function(ctx, payload)`, as `ArqRedis.enqueue_job` writes it."""
    return serialize_job(function, (payload,), {}, None, enqueued_ms, serializer=serialize)


def job_payload(raw: bytes) -> dict[str, Any]:
    """The payload of an arq job `serialized_job` wrote."""
    payload: dict[str, Any] = deserialize(raw)["a"][0]
    return payload


# --- keys ----------------------------------------------------------------------------------


def job_key(job_id: str) -> str:
    """The string holding an arq job's serialized bytes."""
    return job_key_prefix + job_id


def in_progress_key(job_id: str) -> str:
    """Set while a worker runs the job (with a TTL); arq starts no job that has it."""
    return in_progress_key_prefix + job_id


def abort(pipe: Pipeline, job_id: str, *, asked_at_ms: int) -> None:
    """Ask, in `pipe`, that the job be aborted: its worker cancels its task, and a job not
    started yet ends without running."""
    pipe.zadd(abort_jobs_ss, {job_id: asked_at_ms})


def arq_client(pool: ConnectionPool, *, queue_name: str) -> ArqRedis:
    """An arq client on `pool` with our codec; it closes the pool when it is closed."""
    client = ArqRedis(
        pool,
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=queue_name,
    )
    client.auto_close_connection_pool = True  # closed with the client, as from_url does
    return client


# --- the worker ----------------------------------------------------------------------------


class ArqWorker(Worker):
    """arq's Worker running one job function, `run_attempt`, with the parts of arq's worker
    a subclass needs named and typed. A subclass overrides the hooks (`run_attempt`,
    `start_queued`, `poll_once`, `slot_freed`, `after_run`, `drain_started`) and uses the
    rest. Redis away at start-up is waited out for `redis_outage_s`."""

    def __init__(
        self, *, job_name: str, job_max_tries: int, redis_outage_s: float, **kwargs: Any
    ) -> None:
        super().__init__(
            functions=[func(self._call_job, name=job_name, max_tries=job_max_tries)],
            job_serializer=serialize,
            job_deserializer=deserialize,
            **kwargs,
        )
        self.redis_outage_s = redis_outage_s

    # -- hooks --------------------------------------------------------------------------

    async def run_attempt(self, job_id: str, payload: dict[str, Any]) -> None:
        """The job function: run the arq job `job_id` whose argument is `payload`."""
        raise NotImplementedError

    async def start_queued(self, job_ids: list[bytes]) -> None:
        """Start jobs read from the queue (due, in score order); by default as arq does."""
        await super().start_jobs(job_ids)

    async def poll_once(self) -> None:
        """One turn of the worker's loop; by default `read_queue`."""
        await self.read_queue()

    def slot_freed(self) -> None:
        """A job ended and its slot is free."""

    async def after_run(self, job_id: str) -> None:
        """arq is done with a job it started, whether it ran the job function or not."""

    def drain_started(self) -> None:
        """SIGTERM or SIGINT: arq lets running jobs finish (up to `job_completion_wait`)."""

    # -- what a subclass uses ----------------------------------------------------------------

    @property
    def in_progress_ms(self) -> int:
        """How long a started job stays marked in progress (arq's own start_jobs' figure)."""
        return int(self.in_progress_timeout_s * 1000)

    async def read_queue(self) -> None:
        """arq's look at the queue: start due jobs (`start_queued`), abort those asked to,
        forget ended tasks, beat arq's health check."""
        await super()._poll_iteration()

    async def take_slot(self) -> bool:
        """Wait for a free slot and take it; False (nothing taken) when every slot is busy."""
        await self.sem.acquire()
        if self.job_counter >= self.max_jobs:
            self.sem.release()
            return False
        return True

    def give_back_slot(self) -> None:
        """A slot taken with `take_slot` that no job will use."""
        self.sem.release()

    def start(self, job_id: str, score: int) -> None:
        """Run arq job `job_id` (its score in the queue) in the slot just taken."""
        self.job_counter += 1
        task = self.loop.create_task(self.run_job(job_id, score))
        task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
        self.tasks[job_id] = task

    def running(self) -> list[str]:
        """The ids of the jobs whose tasks have not ended."""
        return [job_id for job_id, task in self.tasks.items() if not task.done()]

    def forget_ended(self) -> None:
        """Drop ended tasks, as `read_queue` does at the end of its look."""
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]

    async def not_started(self, job_ids: list[bytes]) -> list[bytes]:
        """Those no worker has started, from one read (arq keeps running jobs in its queue)."""
        marks = await self.pool.mget([in_progress_key(raw.decode()) for raw in job_ids])
        return [raw for raw, mark in zip(job_ids, marks, strict=True) if mark is None]

    def stop_now(self) -> None:
        """Stop as SIGTERM would without a drain: running jobs are cancelled."""
        self.handle_sig(signal.SIGTERM)

    def startup_value(self, name: str, kind: type[T]) -> T:
        """What the `on_startup` hook put in arq's context under `name`, checked to be a `kind`."""
        value = self.ctx.get(name)
        if not isinstance(value, kind):
            raise TypeError(f"arq's ctx[{name!r}] is {type(value).__name__}, not {kind.__name__}")
        return value

    # -- arq's internals, overridden here only ---------------------------------------------

    async def main(self) -> None:
        """arq's `Worker.main` for a worker given its pool (arq waits for Redis only when it
        builds one), its INFO waited out like every call."""
        logger.info("starting worker for %s", ", ".join(self.functions))
        await outlasting_outage(
            lambda: log_redis_info(self.pool, logger.info), limit_s=self.redis_outage_s
        )
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        async for _ in poll(self.poll_delay_s):
            await self._poll_iteration()
            if self.burst and await self._burst_over():
                return

    async def _burst_over(self) -> bool:
        """arq's burst mode (tests use it): over, once its running jobs end, when it has
        started `max_burst_jobs` or the queue is empty."""
        started_enough = 0 <= self.max_burst_jobs <= self._jobs_started()
        if started_enough or await self.pool.zcard(self.queue_name) == 0:
            await asyncio.gather(*self.tasks.values())
            return True
        return False

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        await self.start_queued(job_ids)

    async def _poll_iteration(self) -> None:
        await self.poll_once()

    def handle_sig_wait_for_completion(self, signum: Signals) -> None:
        self.drain_started()
        super().handle_sig_wait_for_completion(signum)

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self.slot_freed()

    async def run_job(self, job_id: str, score: int) -> None:
        try:
            await super().run_job(job_id, score)
        finally:
            await self.after_run(job_id)

    async def _call_job(self, ctx: dict[str, Any], payload: dict[str, Any]) -> None:
        await self.run_attempt(str(ctx["job_id"]), payload)
