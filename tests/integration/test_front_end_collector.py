"""A front end serves with start-up's objects frozen and full collections rare, and leaves the
collector as it found it when it stops (shared/process/collector.py)."""

from __future__ import annotations

import asyncio
import gc

from api.app import front_end_server
from ccfleet.embedded_redis import EmbeddedRedis, free_port
from shared.process.collector import FULL_AFTER_MIDDLE
from shared.settings import Settings

BOUND_S = 20.0


async def test_a_front_end_serves_with_full_collections_rare(redis_server: EmbeddedRedis) -> None:
    thresholds = gc.get_threshold()
    settings = Settings(redis_url=redis_server.url, drain_timeout_s=1, auth="off")
    server, _ = front_end_server(settings, host="127.0.0.1", port=free_port())
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(BOUND_S):
            while not server.started:  # noqa: ASYNC110 - uvicorn has no event for it
                await asyncio.sleep(0.01)
        assert gc.get_threshold()[2] == FULL_AFTER_MIDDLE
        assert gc.get_freeze_count() > 0
    finally:
        server.should_exit = True
        async with asyncio.timeout(BOUND_S):
            await serving
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == 0
