"""A front end whose chunk hub dies, and a worker whose heartbeat dies, stop (and their
processes exit 1) instead of living on without relaying chunks or beating."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from api.app import front_end_server
from ccfleet.embedded_redis import EmbeddedRedis, free_port
from shared.process.vital_tasks import VitalTasks
from shared.settings import Settings
from tests.fakes import fake_cli
from worker.main import build_worker

BOUND_S = 20.0


async def task_running(vital: VitalTasks, name: str) -> asyncio.Task[None]:
    async with asyncio.timeout(BOUND_S):
        while name not in vital.tasks:  # noqa: ASYNC110 - started by the process's own start-up
            await asyncio.sleep(0.01)
    return vital.tasks[name]


async def test_a_front_end_whose_chunk_hub_dies_stops_serving(
    redis_server: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(redis_url=redis_server.url, drain_timeout_s=1, auth="off")
    server, vital = front_end_server(settings, host="127.0.0.1", port=free_port())
    serving = asyncio.create_task(server.serve())
    hub = await task_running(vital, "chunk-hub")
    hub.cancel()  # as an error nobody foresaw would end it
    async with asyncio.timeout(BOUND_S):
        await serving
    assert vital.failed == "chunk-hub"
    assert any("vital task chunk-hub" in r.getMessage() for r in caplog.records)


async def test_a_worker_whose_heartbeat_dies_stops(
    redis_server: EmbeddedRedis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        redis_url=redis_server.url,
        claude_bin=str(fake_cli.install(tmp_path / "claude")),
        work_root=str(tmp_path),
        heartbeat_interval_s=0.1,
    )
    worker = build_worker(settings, {"PATH": "/usr/bin:/bin"})
    running = asyncio.create_task(worker.async_run())
    try:
        heartbeat = await task_running(worker.vital, "heartbeat")
        heartbeat.cancel()  # as an error nobody foresaw would end it
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(BOUND_S):
                await running  # arq's own shutdown cancels its main task
    finally:
        await worker.close()
    assert worker.vital.failed == "heartbeat"
    assert any("vital task heartbeat" in r.getMessage() for r in caplog.records)
