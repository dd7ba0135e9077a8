"""The dashboard's data, assembled from real Redis as workers, queues and front ends write it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool

from api.dashboard.view import assemble_dashboard
from ccfleet.embedded_redis import EmbeddedRedis
from shared.access.ledger import LedgerEntry, Usage, record_usage
from shared.batches.store import BatchStore, NewBatch, StoredRequest
from shared.batches.wire import new_batch_id, succeeded
from shared.fleet.registry import set_account_cooling
from shared.queue.job_queue import JobLifetimes, JobQueue
from shared.settings import Settings
from shared.telemetry.request_stats import RequestOutcome, record_request
from shared.wire.messages import MessagesRequest
from worker.context import WorkerState
from worker.heartbeat import beat

TTL_S = 10.0


@pytest.fixture
async def pool(redis_server: EmbeddedRedis) -> AsyncIterator[ArqRedis]:
    arq_pool = await create_pool(RedisSettings.from_dsn(redis_server.url))
    try:
        yield arq_pool
    finally:
        await arq_pool.aclose()


def worker_state(worker_id: str, account: str, **fields: object) -> WorkerState:
    state = WorkerState(
        worker_id=worker_id, host="host-a", account=account, slots=3, cli_version="2.1.328"
    )
    for name, value in fields.items():
        setattr(state, name, value)
    return state


async def test_the_view_shows_workers_accounts_lanes_and_request_figures(pool: ArqRedis) -> None:
    now_s = time.time()
    await beat(pool, worker_state("w-1", "alice", busy=2, monthly_usd=20.0), ttl_s=TTL_S)
    await beat(pool, worker_state("w-2", "bob", last_error="upstream 529"), ttl_s=TTL_S)
    await set_account_cooling(pool, "bob", until_s=now_s + 600, reason="five_hour")
    lifetimes = JobLifetimes.of(Settings(redis_url="redis://unused"))
    queue = JobQueue(pool, queue_name="test-queue", lifetimes=lifetimes)
    request = MessagesRequest.model_validate(
        {"model": "sonnet", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    )
    await queue.submit(request, request_id="req_1", lane="batch", lane_limit=10)
    await record_request(pool, RequestOutcome(ended_at_s=now_s, status=200, ttft_ms=470))
    run = Usage(input_tokens=1000, output_tokens=500, cost_usd=0.0105)
    entry = LedgerEntry(None, "alice", "sonnet", "job_1:1", run, requests=1, errors=0)
    await record_usage(pool, entry, now_s=now_s, retention_days=1)

    store = BatchStore(pool, retention_s=600)
    batch = NewBatch(new_batch_id(), "", int(now_s * 1000), int(now_s * 1000) + 86_400_000)
    await store.create(batch, [StoredRequest(i, b'{"custom_id": "r"}') for i in range(3)])
    await store.record(batch.id, 0, "r", succeeded({"type": "message", "content": []}))

    view = await assemble_dashboard(pool, heartbeat_ttl_s=TTL_S, now_s=now_s + 4)

    assert [(w.id, w.busy, w.slots, w.last_error) for w in view.workers] == [
        ("w-1", 2, 3, ""),
        ("w-2", 0, 3, "upstream 529"),
    ]
    assert [(a.name, a.cooling, a.reason, a.month_usd, a.monthly_usd) for a in view.accounts] == [
        ("alice", False, "", 0.0105, 20.0),
        ("bob", True, "five_hour", 0.0, 0.0),
    ]
    lanes = {lane.name: lane for lane in view.lanes}
    assert (lanes["interactive"].waiting, lanes["interactive"].oldest_wait_s) == (0, 0.0)
    assert lanes["batch"].waiting == 1
    assert lanes["batch"].oldest_wait_s == pytest.approx(4, abs=1)
    assert [(r.window_s, r.requests) for r in view.requests] == [(60, 1), (300, 1)]
    assert view.requests[0].ttft_p50_ms == pytest.approx(470, rel=0.05)
    assert view.totals.free_slots == 1  # alice's one idle slot; bob cools
    assert [(b.id, b.status, b.done, b.total, b.succeeded) for b in view.batches] == [
        (batch.id, "in_progress", 1, 3, 1)
    ]
