"""Builds and runs one arq worker process serving one Claude account."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Mapping
from typing import Any

import uvloop
from redis.exceptions import RedisError

from shared.broker.outage import outlasting_outage
from shared.process.vital_tasks import VitalTasks
from shared.services import FleetServices
from shared.settings import Settings
from shared.telemetry.metrics import FleetMetrics
from worker.batch_feeder import BatchFeeder
from worker.cli.check import check_cli, check_cli_forever, record_check
from worker.cli.command import cli_base_environment
from worker.cli.config import CliConfig
from worker.cli.login import AccountLogin
from worker.cli.pool import CliPool
from worker.cli.resident import ResidentConversations
from worker.cli.workspace import WorkerDirectory, remove_dead_workers, sweep_forever
from worker.context import WorkerContext, WorkerState
from worker.fleet_worker import FleetWorker
from worker.heartbeat import beat, beat_forever, unregister
from worker.life_line import LifeLine
from worker.metrics_server import MetricsServer
from worker.queue_wakeup import QueueWakeup
from worker.reply.accounting import check_budget_at_start
from worker.upstream_models import can_list_models, publish_models_forever


def private_cli_environment(
    environ: Mapping[str, str], private_dir: str
) -> tuple[dict[str, str], AccountLogin]:
    """The CLI's environment with only the account's credential, `private_dir` (0700) as its
    HOME, configuration and TMPDIR (each job replaces all three with its own), and the login."""
    login = AccountLogin.from_environ(environ, private_dir)
    env = {
        **cli_base_environment(environ),
        **login.environment,
        "HOME": private_dir,
        "CLAUDE_CONFIG_DIR": private_dir,
        "TMPDIR": private_dir,
    }
    return env, login


def build_worker(settings: Settings, environ: dict[str, str]) -> FleetWorker:
    """An arq worker for these settings; `environ` is what the CLI may inherit."""
    worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    work_root = settings.worker.effective_work_root()
    remove_dead_workers(work_root)
    own_dir = WorkerDirectory.create(work_root)
    base_env, login = private_cli_environment(environ, own_dir.path)
    cli = CliConfig(
        claude_bin=settings.cli.claude_bin,
        base_env=base_env,
        work_root=own_dir.path,
        timeout_s=settings.jobs.timeout_s,
        kill_grace_s=settings.cli.kill_grace_s,
        first_byte_timeout_s=settings.jobs.first_byte_timeout_s,
        login=login,
    )
    state = WorkerState(
        worker_id=worker_id,
        host=socket.gethostname(),
        account=settings.worker.account,
        slots=settings.worker.slots,
        cli_version="",
        started_at_ms=int(time.time() * 1000),
        monthly_usd=settings.worker.account_monthly_usd,
        priority=settings.worker.account_priority,
    )
    metrics = FleetMetrics()
    metrics_server = MetricsServer(
        metrics, host=settings.worker.metrics_host, port=settings.worker.metrics_port
    )
    wakeup = QueueWakeup(idle_poll_s=settings.worker.poll_delay_s)
    services = FleetServices.build(settings)  # its Redis client is arq's pool, ctx["redis"]

    async def on_startup(ctx: dict[str, Any]) -> None:
        redis = ctx["redis"]
        record_check(state, await check_cli(cli.claude_bin, cli.base_env))
        pool = _ready_cli_pool(settings, cli, state)
        residents = (
            ResidentConversations(
                max_resident=settings.resident.max,
                idle_s=settings.resident.idle_s,
                stats=state.resident_clis,
            )
            if settings.resident.max
            else None
        )
        feeder = BatchFeeder(redis, services.batch_store, services.batch_dispatch, settings)
        worker = WorkerContext(
            settings=settings,
            cli=cli,
            state=state,
            queue=services.queue,
            metrics=metrics,
            pool=pool,
            residents=residents,
            batches=services.batch_store,
            feeder=feeder,
        )
        ctx["worker"] = worker
        metrics_server.start()
        # Redis may go away between arq's first PING and here (a restart, a failover): the
        # start-up's own calls wait it out, as the loops started below do.
        grace_s = settings.redis.outage_grace_s
        await outlasting_outage(lambda: check_budget_at_start(worker, redis), limit_s=grace_s)
        if pool is not None:
            ctx["pool_task"] = asyncio.create_task(pool.run(), name="ready-cli-pool")
        if residents is not None:
            ctx["residents_task"] = asyncio.create_task(residents.run(), name="resident-clis")
        await outlasting_outage(
            lambda: beat(redis, state, ttl_s=settings.worker.heartbeat_ttl_s), limit_s=grace_s
        )
        if settings.worker.wake_on_queue:
            wakeup.start(redis)
        vital.start(
            beat_forever(
                redis,
                state,
                interval_s=settings.worker.heartbeat_interval_s,
                ttl_s=settings.worker.heartbeat_ttl_s,
            ),
            name="heartbeat",
        )
        life_line = LifeLine(redis, state, heartbeat_ttl_s=settings.worker.heartbeat_ttl_s)
        vital.start(life_line.hold_forever(), name="life-line")
        vital.start(
            check_cli_forever(
                cli.claude_bin, cli.base_env, state, interval_s=settings.cli.check_interval_s
            ),
            name="cli-check",
        )
        vital.start(feeder.run(), name="batch-feeder")
        vital.start(
            sweep_forever(work_root, interval_s=settings.worker.work_sweep_interval_s),
            name="sweeper",
        )
        if can_list_models(cli.base_env):
            vital.start(
                publish_models_forever(
                    redis, cli.base_env, refresh_s=settings.worker.models_refresh_s
                ),
                name="upstream-models",
            )

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        await wakeup.stop()
        await _stop_pool(ctx)
        await vital.stop()
        own_dir.close()
        with contextlib.suppress(RedisError):
            await unregister(ctx["redis"], state)
        metrics_server.stop()

    # A worker that no longer beats is taken for dead: a dead heartbeat stops it at once.
    vital = VitalTasks(on_death=lambda: fleet_worker.stop_now())
    fleet_worker = FleetWorker(
        state=state,
        vital=vital,
        redis_outage_s=settings.redis.outage_grace_s,
        batch_slots=services.lanes.batch.slots_on(settings.worker.slots),
        job_max_tries=settings.jobs.max_tries,
        queue_name=settings.queue.name,
        redis_pool=services.redis,
        max_jobs=settings.worker.slots,
        job_timeout=settings.jobs.timeout_s + 30,
        keep_result=0,  # nobody reads arq results; a kept one holds the whole request
        wakeup=wakeup,
        queue=services.queue,
        allow_abort_jobs=True,
        job_completion_wait=int(settings.worker.drain_s),
        on_startup=on_startup,
        on_shutdown=on_shutdown,
    )
    return fleet_worker


def _ready_cli_pool(settings: Settings, cli: CliConfig, state: WorkerState) -> CliPool | None:
    if settings.prewarm.clis == 0:
        return None
    return CliPool(
        cli,
        max_ready=settings.prewarm.clis,
        idle_s=settings.prewarm.idle_s,
        demand_window_s=settings.prewarm.demand_window_s,
        stats=state.ready_clis,
    )


async def _stop_pool(ctx: dict[str, Any]) -> None:
    """Ready and resident CLIs end with their worker: none may be left behind."""
    for name in ("pool_task", "residents_task"):
        task: asyncio.Task[None] | None = ctx.pop(name, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    worker: WorkerContext | None = ctx.get("worker")
    if worker is not None and worker.pool is not None:
        await worker.pool.close()
    if worker is not None and worker.residents is not None:
        await worker.residents.close()


def run_worker(settings: Settings) -> int:
    """Run a worker until it stops; its exit code (1 if a vital task died)."""
    asyncio.set_event_loop(uvloop.new_event_loop())  # arq runs on the loop it finds set
    worker = build_worker(settings, dict(os.environ))
    worker.run()
    return 0 if worker.vital.failed is None else 1
