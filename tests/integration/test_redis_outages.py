"""A Redis restart shorter than the outage grace is invisible to clients: requests queued,
running or streaming when it goes away, and new ones sent while it is away, all complete
whole; a job whose keys the restart lost (AOF's last second) ends, never hangs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from redis import Redis as SyncRedis

from ccfleet.embedded_redis import EmbeddedRedis
from shared.broker import redis_keys
from tests import client_keys
from tests.conftest import Stack, StackFactory
from tests.fakes import fake_cli
from tests.fakes.blink_proxy import BlinkProxy
from tests.processes import ManagedProcess, http_ok, wait_until

DRIPS = 30  # a slow answer: one delta every 0.1 s, so a restart lands mid-stream
BOUND_S = 60.0


def request(*, stream: bool) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
    }


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """As in production: AOF with `appendfsync everysec`, restarted on its port and data."""
    server = EmbeddedRedis(tmp_path / "redis", persist=True).start()
    try:
        yield server
    finally:
        server.kill()


def dripping_stack(make_stack: StackFactory, tmp_path: Path, **env: str) -> Stack:
    cli = fake_cli.install(
        tmp_path / "claude",
        FAKE_CLI_MODE="stream_forever",
        FAKE_CLI_DRIP_S="0.1",
        FAKE_CLI_DRIP_COUNT=str(DRIPS),
    )
    return make_stack(CCFLEET_CLAUDE_BIN=str(cli), CCFLEET_WORKER_SLOTS="8", **env)


async def streamed_text(client: httpx.AsyncClient, url: str, started: asyncio.Event) -> str:
    """The text of a streamed answer; an `event: error` or a non-200 fails."""
    text = []
    async with client.stream("POST", f"{url}/v1/messages", json=request(stream=True)) as reply:
        assert reply.status_code == 200, (await reply.aread()).decode()
        event = ""
        async for line in reply.aiter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                assert event != "error", line
                data = orjson.loads(line.removeprefix("data: "))
                if event == "content_block_delta":
                    text.append(data["delta"]["text"])
                    started.set()
    return "".join(text)


async def whole_text(client: httpx.AsyncClient, url: str) -> str:
    reply = await client.post(f"{url}/v1/messages", json=request(stream=False))
    assert reply.status_code == 200, reply.text
    return str(reply.json()["content"][0]["text"])


async def test_a_one_second_redis_restart_is_invisible_to_every_request(
    make_stack: StackFactory, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    stack = dripping_stack(make_stack, tmp_path)
    async with httpx.AsyncClient(timeout=BOUND_S) as client:
        streaming_started = [asyncio.Event() for _ in range(3)]
        in_flight = [
            *(asyncio.create_task(streamed_text(client, stack.url, s)) for s in streaming_started),
            *(asyncio.create_task(whole_text(client, stack.url)) for _ in range(3)),
        ]
        for started in streaming_started:
            await asyncio.wait_for(started.wait(), BOUND_S)
        await asyncio.to_thread(redis_server.stop)  # SIGTERM: AOF flushed, nothing lost
        down_at = time.monotonic()
        during = [
            asyncio.create_task(streamed_text(client, stack.url, asyncio.Event())),
            asyncio.create_task(whole_text(client, stack.url)),
        ]
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - down_at)))
        await asyncio.to_thread(redis_server.start)
        texts = await asyncio.gather(*in_flight, *during)
    assert texts == ["x" * DRIPS] * len(texts), stack.logs()


async def test_a_redis_outage_longer_than_the_grace_is_a_529_with_retry_after(
    make_stack: StackFactory, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    stack = dripping_stack(make_stack, tmp_path, CCFLEET_REDIS_OUTAGE_GRACE_S="1")
    await asyncio.to_thread(redis_server.stop)
    try:
        async with httpx.AsyncClient(timeout=BOUND_S) as client:
            reply = await client.post(f"{stack.url}/v1/messages", json=request(stream=False))
    finally:
        await asyncio.to_thread(redis_server.start)
    assert reply.status_code == 529, reply.text
    assert reply.json()["error"]["type"] == "overloaded_error"
    assert float(reply.headers["retry-after"]) > 0


async def test_a_job_whose_keys_a_restart_lost_ends_with_a_clear_error_instead_of_hanging(
    make_stack: StackFactory, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    # AOF's last second lost: the job's record and queue entries are gone, its relay waits.
    stack = make_stack(
        workers=0, wait_ready=False, CCFLEET_CLAUDE_BIN=str(fake_cli.write_executable(tmp_path))
    )
    await asyncio.to_thread(wait_until, lambda: http_ok(f"{stack.url}/health"), BOUND_S, "api")

    async def lose_the_job() -> None:
        with SyncRedis.from_url(redis_server.url) as redis:
            waiting = redis_keys.lane_waiting("interactive")
            await asyncio.to_thread(wait_until, lambda: redis.zcard(waiting) == 1, 30, "the job")
            (job_id,) = redis.zrange(waiting, 0, -1)
            redis.delete(redis_keys.job_record(job_id.decode()), waiting)

    async with httpx.AsyncClient(timeout=BOUND_S) as client:
        reply, _ = await asyncio.gather(
            client.post(f"{stack.url}/v1/messages", json=request(stream=False)), lose_the_job()
        )
    assert reply.status_code == 529, reply.text
    assert reply.json()["error"]["message"] == "The job queue lost this request; please retry."
    assert float(reply.headers["retry-after"]) > 0


# -- paths beyond a new request: a resume, batches, a worker starting up ----------------------


async def restart_redis_during(
    redis_server: EmbeddedRedis, *requests: Awaitable[httpx.Response], down_s: float = 1.0
) -> list[httpx.Response]:
    """Send `requests` while Redis is away for `down_s` (SIGTERM: AOF flushed), their replies."""
    await asyncio.to_thread(redis_server.stop)
    down_at = time.monotonic()
    sent = [asyncio.ensure_future(request) for request in requests]
    await asyncio.sleep(max(0.0, down_s - (time.monotonic() - down_at)))
    await asyncio.to_thread(redis_server.start)
    return await asyncio.gather(*sent)


async def first_deltas(client: httpx.AsyncClient, url: str, count: int) -> tuple[str, str]:
    """Start a stream the client may resume, leave after `count` deltas: (text, last id)."""
    text, last_id, event = [], "", ""
    headers = {"x-ccfleet-resume-window": "30"}
    async with client.stream(
        "POST", f"{url}/v1/messages", json=request(stream=True), headers=headers
    ) as reply:
        assert reply.status_code == 200, (await reply.aread()).decode()
        async for line in reply.aiter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("id: "):
                last_id = line.removeprefix("id: ")
            elif line.startswith("data: ") and event == "content_block_delta":
                text.append(orjson.loads(line.removeprefix("data: "))["delta"]["text"])
                if len(text) == count:
                    return "".join(text), last_id
    raise AssertionError("the stream ended before its first deltas")


async def resumed_text(client: httpx.AsyncClient, url: str, last_id: str) -> httpx.Response:
    """The rest of a stream after `last_id`, as one response whose text is the deltas'."""
    text, event = [], ""
    headers = {"last-event-id": last_id}
    async with client.stream(
        "POST", f"{url}/v1/messages", json=request(stream=True), headers=headers
    ) as reply:
        if reply.status_code != 200:
            await reply.aread()
            return reply
        async for line in reply.aiter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                assert event != "error", line
                if event == "content_block_delta":
                    text.append(orjson.loads(line.removeprefix("data: "))["delta"]["text"])
    return httpx.Response(200, text="".join(text))


def batch_of(count: int) -> dict[str, Any]:
    return {
        "requests": [
            {"custom_id": f"r{index}", "params": request(stream=False)} for index in range(count)
        ]
    }


async def ended_batch(client: httpx.AsyncClient, url: str, batch_id: str) -> dict[str, Any]:
    """The batch once ended; its results must all have succeeded."""
    batch: dict[str, Any] = {}
    deadline = time.monotonic() + BOUND_S
    while batch.get("processing_status") != "ended":
        assert time.monotonic() < deadline, f"batch {batch_id} did not end: {batch}"
        await asyncio.sleep(0.1)
        reply = await client.get(f"{url}/v1/messages/batches/{batch_id}")
        assert reply.status_code == 200, reply.text
        batch = reply.json()
    results = await client.get(f"{url}/v1/messages/batches/{batch_id}/results")
    lines = [orjson.loads(line) for line in results.text.splitlines()]
    assert [line["result"]["type"] for line in lines] == ["succeeded"] * len(lines)
    return batch


async def test_a_resume_batch_calls_and_a_model_list_during_a_redis_restart_all_complete(
    make_stack: StackFactory, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    stack = dripping_stack(make_stack, tmp_path, CCFLEET_BATCH_CHECK_S="0.2")
    batches = f"{stack.url}/v1/messages/batches"
    async with httpx.AsyncClient(timeout=BOUND_S) as client:
        first = await client.post(batches, json=batch_of(2))
        assert first.status_code == 200, first.text
        first_id = first.json()["id"]
        before, last_id = await first_deltas(client, stack.url, 3)
        resumed, created, read, listed, models = await restart_redis_during(
            redis_server,
            resumed_text(client, stack.url, last_id),
            client.post(batches, json=batch_of(1)),
            client.get(f"{batches}/{first_id}"),
            client.get(batches),
            client.get(f"{stack.url}/v1/models"),
        )
        for reply in (resumed, created, read, listed, models):
            assert reply.status_code == 200, reply.text
        done = [await ended_batch(client, stack.url, b) for b in (first_id, created.json()["id"])]
    assert before + resumed.text == "x" * DRIPS, stack.logs()
    assert [b["request_counts"]["succeeded"] for b in done] == [2, 1], stack.logs()


SERVER_SECRET = "outage-test-server-secret-" + "0123456789abcdef" * 2


async def test_with_client_keys_a_request_sent_during_a_redis_restart_is_answered(
    make_stack: StackFactory, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    # Client keys on, as in production: every request's key is read from Redis first.
    stack = make_stack(
        CCFLEET_CLAUDE_BIN=str(fake_cli.write_executable(tmp_path)),
        CCFLEET_AUTH="on",
        CCFLEET_AUTH_SECRET=SERVER_SECRET,
    )
    secret = await client_keys.create_key(redis_server.url, SERVER_SECRET, "outage")
    async with httpx.AsyncClient(timeout=BOUND_S, headers={"x-api-key": secret}) as client:
        (reply,) = await restart_redis_during(
            redis_server, client.post(f"{stack.url}/v1/messages", json=request(stream=False))
        )
    assert reply.status_code == 200, reply.text
    assert reply.json()["content"][0]["text"], reply.text


def gated_cli(directory: Path) -> tuple[Path, Path, Path]:
    """A CLI whose first start-up check (`--version`) says it began, then waits for a go:
    (the CLI, the file it touches when checked, the file that lets it answer)."""
    directory.mkdir()
    real = fake_cli.write_executable(directory)
    checking, go = directory / "checking", directory / "go"
    gate = directory / "gated-claude"
    gate.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = --version ] && [ ! -e {go} ]; then\n'
        f"  touch {checking}; i=0\n"
        f'  while [ ! -e {go} ] && [ "$i" -lt 600 ]; do sleep 0.05; i=$((i+1)); done\n'
        "fi\n"
        f'exec {real} "$@"\n'
    )
    gate.chmod(0o755)
    return gate, checking, go


async def test_a_worker_whose_redis_restarts_while_it_starts_serves_once_redis_is_back(
    make_stack: StackFactory, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    cli, checking, go = gated_cli(tmp_path / "gated")
    stack = make_stack(workers=0, wait_ready=False, CCFLEET_CLAUDE_BIN=str(cli))
    worker = stack.add_worker(CCFLEET_CLAUDE_BIN=str(cli))
    # Past its first PING (arq's pool answered), in its start-up's CLI check: Redis goes.
    await asyncio.to_thread(wait_until, checking.exists, BOUND_S, "the worker's CLI check")
    await asyncio.to_thread(redis_server.stop)
    go.touch()
    await asyncio.sleep(1.0)
    await asyncio.to_thread(redis_server.start)
    await assert_worker_serves(stack, worker)


async def test_a_worker_started_while_redis_is_down_serves_once_redis_is_back_within_the_grace(
    make_stack: StackFactory, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    cli = fake_cli.install(tmp_path / "claude")
    stack = make_stack(workers=0, wait_ready=False, CCFLEET_CLAUDE_BIN=str(cli))
    await asyncio.to_thread(redis_server.stop)
    worker = stack.add_worker(CCFLEET_CLAUDE_BIN=str(cli), CCFLEET_REDIS_OUTAGE_GRACE_S="30")
    await asyncio.to_thread(
        wait_until,
        lambda: "redis unavailable" in worker.log_text(),
        BOUND_S,
        "the worker to find Redis down",
    )
    await asyncio.to_thread(redis_server.start)
    await assert_worker_serves(stack, worker)


async def test_a_worker_whose_redis_blinks_at_arqs_start_up_info_serves_once_redis_is_back(
    make_stack: StackFactory, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    cli = fake_cli.install(tmp_path / "claude")
    stack = make_stack(workers=0, wait_ready=False, CCFLEET_CLAUDE_BIN=str(cli))
    # Past its PING, at arq's INFO (its start-up log line), Redis goes away for a second.
    with BlinkProxy(redis_server.port, command="INFO", down_s=1.0) as proxy:
        worker = stack.add_worker(CCFLEET_CLAUDE_BIN=str(cli), CCFLEET_REDIS_URL=proxy.url)
        await assert_worker_serves(stack, worker)
        assert proxy.blinked.is_set()
        worker.stop()


async def assert_worker_serves(stack: Stack, worker: ManagedProcess) -> None:
    """The worker becomes ready (rather than exiting) and answers a request."""
    await asyncio.to_thread(
        wait_until,
        lambda: worker.proc.poll() is not None or http_ok(f"{stack.url}/ready"),
        BOUND_S,
        "the worker to be ready or to exit",
    )
    assert worker.proc.poll() is None, worker.log_text()[-3000:]
    async with httpx.AsyncClient(timeout=BOUND_S) as client:
        reply = await client.post(f"{stack.url}/v1/messages", json=request(stream=False))
    assert reply.status_code == 200, reply.text
