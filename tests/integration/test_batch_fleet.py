"""Message batches on a fleet whose parts fail or fill up: cancel, expiry, a front end or a
worker killed, Redis restarted (AOF), interactive work first, batches sharing the lane.

Real processes and a real Redis; the workers run the fake CLI (tests/fakes/fake_cli.py),
which answers after FAKE_CLI_DELAY_S: these tests are about the fleet, not the CLI.
"""

from __future__ import annotations

import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
import redis
from anthropic.types.messages import MessageBatch

from ccfleet.embedded_redis import EmbeddedRedis
from shared.broker import redis_keys
from tests import loopback
from tests.conftest import Stack, StackFactory
from tests.fakes import fake_cli
from tests.processes import http_ok, wait_until
from tests.sdk import SdkClients, text_of

MODEL = "claude-sonnet-4-5"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """With an append-only file on a fixed port, so a restart brings back the same data."""
    with EmbeddedRedis(tmp_path / "redis", persist=True) as server:
        yield server


def fake_cli_bin(root: Path, delay_s: float) -> str:
    """An executable that runs the fake CLI answering "Hello" after `delay_s`."""
    path = root / f"fake-claude-{delay_s}"
    path.write_text(
        f'#!/bin/sh\nFAKE_CLI_DELAY_S={delay_s} exec {sys.executable} {fake_cli.__file__} "$@"\n'
    )
    path.chmod(0o755)
    return str(path)


def fake_env(tmp_path: Path, *, delay_s: float, **env: Any) -> dict[str, str]:
    """The environment of a stack whose workers run the fake CLI, with `env` on top."""
    defaults = {
        "CCFLEET_CLAUDE_BIN": fake_cli_bin(tmp_path, delay_s),
        "CCFLEET_BATCH_CHECK_S": "0.2",
        "CCFLEET_HEARTBEAT_TTL_S": "2",
    }
    return {**defaults, **{k: str(v) for k, v in env.items()}}


def fake_stack(
    make_stack: StackFactory,
    tmp_path: Path,
    *,
    delay_s: float,
    workers: int = 1,
    apis: int = 1,
    **env: Any,
) -> Stack:
    return make_stack(workers=workers, apis=apis, **fake_env(tmp_path, delay_s=delay_s, **env))


def requests(count: int, prefix: str = "r") -> list[Any]:
    return [
        {
            "custom_id": f"{prefix}{i}",
            "params": {
                "model": MODEL,
                "max_tokens": 50,
                "messages": [{"role": "user", "content": f"question {i}"}],
            },
        }
        for i in range(count)
    ]


def wait_batch(
    client: anthropic.Anthropic, batch_id: str, until: Any, timeout_s: float = 60
) -> MessageBatch:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        batch = client.messages.batches.retrieve(batch_id)
        if until(batch):
            return batch
        time.sleep(0.1)
    raise AssertionError(f"batch {batch_id} did not get there within {timeout_s}s")


def ended(batch: MessageBatch) -> bool:
    return batch.processing_status == "ended"


def result_types(client: anthropic.Anthropic, batch_id: str) -> Counter[str]:
    results = list(client.messages.batches.results(batch_id))
    assert len({r.custom_id for r in results}) == len(results)
    return Counter(r.result.type for r in results)


def counts(batch: MessageBatch) -> dict[str, int]:
    return {k: v for k, v in batch.request_counts.model_dump().items() if v}


def test_canceling_mid_way_from_another_front_end_ends_the_batch_with_every_result(
    make_stack: StackFactory, tmp_path: Path, sdk_clients: SdkClients
) -> None:
    stack = fake_stack(make_stack, tmp_path, delay_s=0.3, apis=2, CCFLEET_WORKER_SLOTS=3)
    client = sdk_clients.anthropic_client(stack.url, "k")
    batch = client.messages.batches.create(requests=requests(30))
    wait_batch(client, batch.id, lambda b: b.request_counts.succeeded >= 2)

    canceling = sdk_clients.anthropic_client(stack.api_urls[1], "k").messages.batches.cancel(
        batch.id
    )

    assert canceling.processing_status in ("canceling", "ended")
    assert canceling.cancel_initiated_at is not None
    done = wait_batch(client, batch.id, ended)
    assert done.request_counts.succeeded >= 2
    assert done.request_counts.canceled >= 1
    assert done.request_counts.succeeded + done.request_counts.canceled == 30
    assert result_types(client, batch.id) == Counter(counts(done))


def test_a_batch_unfinished_at_its_expiry_ends_with_the_rest_expired(
    make_stack: StackFactory, tmp_path: Path, sdk_clients: SdkClients
) -> None:
    stack = fake_stack(make_stack, tmp_path, delay_s=0.5, CCFLEET_BATCH_EXPIRY_S=3)
    client = sdk_clients.anthropic_client(stack.url, "k")
    batch = client.messages.batches.create(requests=requests(30))

    done = wait_batch(client, batch.id, ended)

    assert done.request_counts.expired >= 1
    assert done.request_counts.succeeded + done.request_counts.expired == 30
    assert result_types(client, batch.id) == Counter(counts(done))


def test_a_front_end_killed_mid_batch_loses_nothing(
    make_stack: StackFactory, tmp_path: Path, sdk_clients: SdkClients
) -> None:
    stack = fake_stack(make_stack, tmp_path, delay_s=0.2, apis=2)
    batch = sdk_clients.anthropic_client(stack.api_urls[0], "k").messages.batches.create(
        requests=requests(8)
    )
    stack.apis[0].signal(signal.SIGKILL)

    client = sdk_clients.anthropic_client(stack.api_urls[1], "k")
    done = wait_batch(client, batch.id, ended)

    assert counts(done) == {"succeeded": 8}
    assert result_types(client, batch.id) == Counter(succeeded=8)


def test_requests_whose_worker_was_killed_run_again_on_another_worker(
    make_stack: StackFactory, tmp_path: Path, sdk_clients: SdkClients
) -> None:
    # Every slot takes batch work (none kept for interactive requests, which this test sends
    # none of): the survivor runs two requests at a time, half the wait for the six.
    stack = fake_stack(
        make_stack, tmp_path, delay_s=1.5, workers=2, CCFLEET_RESERVED_INTERACTIVE_SLOTS=0
    )
    client = sdk_clients.anthropic_client(stack.url, "k")
    batch = client.messages.batches.create(requests=requests(6))
    busy = wait_for_busy_batch_worker(stack)
    victim = next(w for w in stack.workers if f"-{w.pid}-" in busy)
    victim.signal(signal.SIGKILL)

    done = wait_batch(client, batch.id, ended)

    assert counts(done) == {"succeeded": 6}
    assert result_types(client, batch.id) == Counter(succeeded=6)


def test_a_batch_survives_a_redis_restart(
    make_stack: StackFactory, tmp_path: Path, sdk_clients: SdkClients
) -> None:
    stack = fake_stack(make_stack, tmp_path, delay_s=0.3)
    client = sdk_clients.anthropic_client(stack.url, "k")
    batch = client.messages.batches.create(requests=requests(6))
    wait_batch(client, batch.id, lambda b: b.request_counts.succeeded >= 1)

    stack.redis.stop()
    stack.redis.start()

    done = wait_batch(client, batch.id, ended)
    assert counts(done) == {"succeeded": 6}
    assert result_types(client, batch.id) == Counter(succeeded=6)


def test_interactive_requests_are_answered_while_a_batch_fills_the_batch_slots(
    make_stack: StackFactory, tmp_path: Path, sdk_clients: SdkClients
) -> None:
    stack = fake_stack(make_stack, tmp_path, delay_s=0.5, CCFLEET_WORKER_SLOTS=2)
    client = sdk_clients.anthropic_client(stack.url, "k")
    batch = client.messages.batches.create(requests=requests(10))
    wait_for_busy_batch_worker(stack)

    for _ in range(3):
        answer = client.messages.create(
            model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "now"}]
        )
        assert text_of(answer) == "Hello"
        assert max_busy_batch(stack) <= 1  # the reserved slot stays interactive

    assert client.messages.batches.retrieve(batch.id).request_counts.processing > 0
    assert counts(wait_batch(client, batch.id, ended)) == {"succeeded": 10}


def test_two_batches_progress_together(
    make_stack: StackFactory, tmp_path: Path, sdk_clients: SdkClients
) -> None:
    stack = fake_stack(make_stack, tmp_path, delay_s=0.2, CCFLEET_WORKER_SLOTS=2)
    client = sdk_clients.anthropic_client(stack.url, "k")
    first = client.messages.batches.create(requests=requests(12, "a"))
    second = client.messages.batches.create(requests=requests(4, "b"))

    wait_batch(client, second.id, ended)

    assert client.messages.batches.retrieve(first.id).request_counts.processing > 0
    assert counts(wait_batch(client, first.id, ended)) == {"succeeded": 12}


def fleet_workers(stack: Stack) -> list[dict[str, Any]]:
    workers: list[dict[str, Any]] = loopback.get(f"{stack.url}/v1/fleet").json()["workers"]
    return workers


def max_busy_batch(stack: Stack) -> int:
    return max((w["busy_batch"] for w in fleet_workers(stack)), default=0)


def wait_for_busy_batch_worker(stack: Stack) -> str:
    """The id of a worker running batch work (as its heartbeat reports it)."""
    found: list[str] = []

    def busy() -> bool:
        found[:] = [w["id"] for w in fleet_workers(stack) if w["busy_batch"] > 0]
        return bool(found)

    wait_until(busy, 30, "a worker running batch work")
    return found[0]


def test_a_batch_runs_in_the_batch_slots_of_every_worker_at_once(
    make_stack: StackFactory, tmp_path: Path, sdk_clients: SdkClients
) -> None:
    stack = fake_stack(make_stack, tmp_path, delay_s=0.5, workers=3)
    client = sdk_clients.anthropic_client(stack.url, "k")
    batch = client.messages.batches.create(requests=requests(30))

    wait_until(
        lambda: sum(w["busy_batch"] for w in fleet_workers(stack)) == 3,
        30,
        "three workers running batch work at once",
    )

    assert counts(wait_batch(client, batch.id, ended)) == {"succeeded": 30}


def test_a_worker_holds_a_batch_request_that_would_push_redis_past_the_memory_budget(
    make_stack: StackFactory, tmp_path: Path, redis_server: EmbeddedRedis, sdk_clients: SdkClients
) -> None:
    """The budget is the fleet's: what the front end refuses (529), a worker feeding the batch
    lane must not queue either; the request waits in its batch for room."""
    with redis.Redis.from_url(redis_server.url) as client:
        used = int(client.info("memory")["used_memory"])
    env = fake_env(tmp_path, delay_s=0.2, CCFLEET_REDIS_MEMORY_BUDGET_BYTES=used + (4 << 20))
    stack = make_stack(workers=0, wait_ready=False, **env)
    wait_until(lambda: http_ok(f"{stack.url}/health"), 30, "the front end")
    api = sdk_clients.anthropic_client(stack.url, "k")
    batch = api.messages.batches.create(requests=requests(1))  # room enough for it then
    with redis.Redis.from_url(redis_server.url) as client:
        client.set("other-data", b"x" * (8 << 20))  # then Redis fills up past the budget
    with pytest.raises(anthropic.APIStatusError) as refused:
        api.messages.create(
            model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.status_code == 529 and "no room" in refused.value.message

    worker = stack.add_worker(**env)
    wait_until(lambda: f"{batch.id}/0 waits" in worker.log_text(), 30, "the request held")

    assert counts(api.messages.batches.retrieve(batch.id)) == {"processing": 1}
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.zcard(redis_keys.lane_waiting("batch")) == 0
