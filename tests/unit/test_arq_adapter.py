"""What the arq adapter (shared/queue/arq_adapter.py) relies on in arq 0.28, pinned without
Redis: key names, the serialized job arq's worker reads, and the insides of arq's Worker
that `ArqWorker` wraps. An arq upgrade that moves one of them fails here.
(tests/integration/test_arq_adapter.py pins what needs a running Redis.)"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import arq
from arq import constants
from arq.jobs import deserialize_job, deserialize_job_raw
from arq.utils import args_to_string
from arq.worker import Worker
from redis.asyncio import ConnectionPool

from shared.queue import arq_adapter
from shared.queue.arq_adapter import ArqWorker
from shared.queue.job import RUN_MESSAGES_JOB


def test_the_adapter_is_written_for_arq_0_28() -> None:
    assert arq.VERSION.startswith("0.28."), "re-check every assumption in arq_adapter.py"


def test_arqs_keys_are_named_as_the_queues_scripts_write_them() -> None:
    assert arq_adapter.job_key("i|job_1|1||") == "arq:job:i|job_1|1||"
    assert arq_adapter.in_progress_key("i|job_1|1||") == "arq:in-progress:i|job_1|1||"
    assert constants.job_key_prefix == "arq:job:"
    assert constants.in_progress_key_prefix == "arq:in-progress:"
    assert constants.abort_jobs_ss == "arq:abort"


def test_a_serialized_job_is_what_arqs_worker_reads() -> None:
    payload = {"job_id": "job_1", "attempt": 1, "request": {"model": "m"}}
    raw = arq_adapter.serialized_job(RUN_MESSAGES_JOB, payload, enqueued_ms=1_700_000_000_000)
    function, args, kwargs, job_try, enqueued_ms = deserialize_job_raw(
        raw, deserializer=arq_adapter.deserialize
    )
    assert (function, list(args), kwargs, enqueued_ms) == (
        RUN_MESSAGES_JOB,
        [payload],
        {},
        1_700_000_000_000,
    )
    assert job_try is None, "no try count: arq counts tries in its own key"
    assert deserialize_job(raw, deserializer=arq_adapter.deserialize).function == RUN_MESSAGES_JOB
    assert arq_adapter.job_payload(raw) == payload


def test_a_job_travels_as_json_never_a_pickle() -> None:
    raw = arq_adapter.serialized_job(RUN_MESSAGES_JOB, {"job_id": "job_1"}, enqueued_ms=0)
    assert raw.startswith(b"{") and b'"f":"run_messages"' in raw


def test_arq_logs_a_job_by_its_ids_never_its_request() -> None:
    payload: dict[str, Any] = {"job_id": "job_1", "attempt": 2, "request": {"text": "x" * 10**6}}
    raw = arq_adapter.serialized_job(RUN_MESSAGES_JOB, payload, enqueued_ms=0)
    arguments = arq_adapter.deserialize(raw)["a"]
    assert args_to_string(arguments, {}) == "<job job_1 attempt 2>"
    assert arguments == [payload], "still the payload the job function reads"


def test_an_exception_kept_as_a_result_is_serialized_as_its_repr() -> None:
    raw = arq_adapter.serialize({"r": asyncio.CancelledError()})
    assert arq_adapter.deserialize(raw) == {"r": "CancelledError()"}


def parameters(method: Any) -> list[str]:
    return list(inspect.signature(method).parameters)


def test_the_worker_methods_the_adapter_overrides_or_calls_are_there() -> None:
    assert parameters(Worker.start_jobs) == ["self", "job_ids"]
    assert parameters(Worker.run_job) == ["self", "job_id", "score"]
    assert parameters(Worker._poll_iteration) == ["self"]
    assert parameters(Worker._release_sem_dec_counter_on_complete) == ["self"]
    assert parameters(Worker.handle_sig) == ["self", "signum"]
    assert parameters(Worker.handle_sig_wait_for_completion) == ["self", "signum"]
    assert inspect.iscoroutinefunction(Worker.start_jobs)
    assert inspect.iscoroutinefunction(Worker.run_job)
    assert inspect.iscoroutinefunction(Worker._poll_iteration)


def test_arqs_worker_starts_up_as_the_adapter_re_does_it() -> None:
    """ArqWorker.main re-does these steps of arq's, in this order (its INFO waited out)."""
    source = inspect.getsource(Worker.main)
    steps = [
        "await log_redis_info(self.pool, logger.info)",
        "self.ctx['redis'] = self.pool",
        "await self.on_startup(self.ctx)",
        "async for _ in poll(self.poll_delay_s):",
        "await self._poll_iteration()",
        "if 0 <= self.max_burst_jobs <= self._jobs_started():",
        "await asyncio.gather(*self.tasks.values())",
        "queued_jobs = await self.pool.zcard(self.queue_name)",
    ]
    positions = [source.index(step) for step in steps]
    assert positions == sorted(positions)
    assert source.count("await ") == 7, "a Redis call or a step the adapter does not re-do"


class Idle(ArqWorker):
    async def run_attempt(self, job_id: str, payload: dict[str, Any]) -> None:
        pass


async def test_the_worker_attributes_the_adapter_uses_are_there_with_their_types() -> None:
    worker = Idle(
        job_name=RUN_MESSAGES_JOB,
        job_max_tries=2,
        redis_outage_s=0,
        redis_pool=arq_adapter.arq_client(_unused_pool(), queue_name="q"),
        queue_name="q",
        max_jobs=3,
        job_timeout=50,
        handle_signals=False,
    )
    try:
        assert isinstance(worker.sem, asyncio.BoundedSemaphore)
        assert (worker.job_counter, worker.max_jobs) == (0, 3)
        assert worker.tasks == {}
        assert worker.loop is asyncio.get_running_loop()
        assert worker.in_progress_ms == 60_000, "arq marks a job for its timeout + 10 s"
        assert worker.functions[RUN_MESSAGES_JOB].max_tries == 2
        assert worker.job_serializer is arq_adapter.serialize
        assert worker.job_deserializer is arq_adapter.deserialize
        assert worker.ctx == {}
    finally:
        await worker.pool.aclose()


async def test_slots_are_taken_and_given_back_through_arqs_semaphore_and_counter() -> None:
    worker = Idle(
        job_name=RUN_MESSAGES_JOB,
        job_max_tries=1,
        redis_outage_s=0,
        redis_pool=arq_adapter.arq_client(_unused_pool(), queue_name="q"),
        queue_name="q",
        max_jobs=1,
        handle_signals=False,
    )
    try:
        assert await worker.take_slot()
        worker.job_counter = 1  # as `start` counts a job
        assert not await worker.take_slot(), "every slot busy: nothing taken"
        worker.give_back_slot()
    finally:
        await worker.pool.aclose()


def _unused_pool() -> ConnectionPool:
    return ConnectionPool.from_url("redis://127.0.0.1:1")  # never connected to
