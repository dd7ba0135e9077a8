"""Builds and runs one arq worker process serving one Claude account."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from typing import Any

from arq.worker import func
from redis.exceptions import RedisError

from shared import arq_codec
from shared.job_queue import JobQueue
from shared.jobs import RUN_MESSAGES_JOB
from shared.settings import Settings
from worker.cli_command import cli_base_environment
from worker.cli_config import CliConfig
from worker.cli_pool import CliPool
from worker.cli_version import read_cli_version
from worker.context import WorkerContext, WorkerState
from worker.fleet_worker import FleetWorker
from worker.heartbeat import beat, beat_forever, unregister
from worker.jobs import run_messages
from worker.queue_wakeup import QueueWakeup
from worker.workspace import remove_stale_workspaces

_RESULT_KEEP_S = 300


def build_worker(settings: Settings, environ: dict[str, str]) -> FleetWorker:
    """An arq worker for these settings; `environ` is what the CLI may inherit."""
    cli = CliConfig(
        claude_bin=settings.claude_bin,
        base_env=cli_base_environment(environ),
        work_root=settings.work_root,
        timeout_s=settings.job_timeout_s,
        kill_grace_s=settings.kill_grace_s,
    )
    state = WorkerState(
        worker_id=f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        host=socket.gethostname(),
        account=settings.account,
        slots=settings.worker_slots,
        cli_version="",
        started_at_ms=int(time.time() * 1000),
    )
    wakeup = QueueWakeup(idle_poll_s=settings.worker_poll_delay_s)

    async def on_startup(ctx: dict[str, Any]) -> None:
        redis = ctx["redis"]
        state.cli_version = await read_cli_version(cli.claude_bin, cli.base_env)
        remove_stale_workspaces(cli.work_root, older_than_s=settings.job_timeout_s + 60)
        queue = JobQueue(redis, queue_name=settings.queue_name, record_ttl_s=settings.journal_ttl_s)
        pool = _ready_cli_pool(settings, cli, state)
        ctx["worker"] = WorkerContext(
            settings=settings, cli=cli, state=state, queue=queue, pool=pool
        )
        if pool is not None:
            ctx["pool_task"] = asyncio.create_task(pool.run(), name="ready-cli-pool")
        await beat(redis, state, ttl_s=settings.heartbeat_ttl_s)
        if settings.worker_wake_on_queue:
            wakeup.start(redis)
        ctx["heartbeat"] = asyncio.create_task(
            beat_forever(
                redis,
                state,
                interval_s=settings.heartbeat_interval_s,
                ttl_s=settings.heartbeat_ttl_s,
            ),
            name="heartbeat",
        )

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        await wakeup.stop()
        await _stop_pool(ctx)
        task: asyncio.Task[None] | None = ctx.pop("heartbeat", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(RedisError, OSError):
            await unregister(ctx["redis"], state)

    return FleetWorker(
        state=state,
        batch_slots=max(0, settings.worker_slots - settings.reserved_interactive_slots),
        functions=[func(run_messages, name=RUN_MESSAGES_JOB, max_tries=settings.job_max_tries)],
        queue_name=settings.queue_name,
        redis_settings=arq_codec.redis_settings(settings.effective_redis_url()),
        max_jobs=settings.worker_slots,
        job_timeout=settings.job_timeout_s + 30,
        keep_result=_RESULT_KEEP_S,
        wakeup=wakeup,
        allow_abort_jobs=True,
        job_completion_wait=int(settings.worker_drain_s),
        job_serializer=arq_codec.serialize,
        job_deserializer=arq_codec.deserialize,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
    )


def _ready_cli_pool(settings: Settings, cli: CliConfig, state: WorkerState) -> CliPool | None:
    if settings.prewarm_clis == 0:
        return None
    return CliPool(
        cli,
        max_ready=settings.prewarm_clis,
        idle_s=settings.prewarm_idle_s,
        demand_window_s=settings.prewarm_demand_window_s,
        stats=state.ready_clis,
    )


async def _stop_pool(ctx: dict[str, Any]) -> None:
    """Ready CLIs end with their worker: none may be left behind."""
    task: asyncio.Task[None] | None = ctx.pop("pool_task", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    worker: WorkerContext | None = ctx.get("worker")
    if worker is not None and worker.pool is not None:
        await worker.pool.close()


def run_worker(settings: Settings) -> None:
    build_worker(settings, dict(os.environ)).run()
