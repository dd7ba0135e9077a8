"""The fleet on a Redis that wants a password, and on one reached over TLS (`rediss://`):
front end, worker and `ccfleet status` all connect; a client without the password gets in
nowhere. Real processes, the real CLI against the fake upstream."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from ccfleet.embedded_redis import EmbeddedRedis, free_port
from tests import loopback
from tests.conftest import StackFactory
from tests.e2e.test_fleet import children_of, worker_environments
from tests.fakes.tls_proxy import TlsProxy
from tests.processes import ManagedProcess, http_ok, wait_until

PASSWORD = "s3cr/t@pw:x%"  # characters a URL must escape
HELLO = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "Say hello."}],
}


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path / "redis", password=PASSWORD) as server:
        yield server


def ask(url: str) -> str:
    response = loopback.post(f"{url}/v1/messages", json=HELLO, timeout=60)
    assert response.status_code == 200, response.text
    return str(response.json()["content"][0]["text"])


def status(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccfleet", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_fleet_works_on_a_redis_with_a_password_and_nothing_gets_in_without_it(
    make_stack: StackFactory, redis_server: EmbeddedRedis
) -> None:
    assert "%2F" in redis_server.url  # the password travels escaped
    stack = make_stack(workers=1, apis=1)
    assert ask(stack.url) == "Hello from the fake upstream."
    shown = status(stack.env())
    assert shown.returncode == 0, shown.stderr
    assert "default" in shown.stdout
    with (
        redis.Redis(port=redis_server.port) as anonymous,
        pytest.raises(redis.AuthenticationError),
    ):
        anonymous.keys("*")


def test_the_fleet_works_on_a_redis_reached_over_tls(
    make_stack: StackFactory, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    with TlsProxy(tmp_path, backend_port=redis_server.port) as proxy:
        url = proxy.url(password=PASSWORD)
        stack = make_stack(workers=1, apis=1, CCFLEET_REDIS_URL=url)
        assert ask(stack.url) == "Hello from the fake upstream."
        shown = status(stack.env(CCFLEET_REDIS_URL=url))
        assert shown.returncode == 0, shown.stderr
        assert proxy.connections >= 3  # front end, worker, status: all through TLS


def test_ccfleet_up_runs_its_redis_on_loopback_with_a_random_password(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    env = make_stack(workers=0, apis=0, wait_ready=False).env()
    del env["CCFLEET_REDIS_URL"]
    port = free_port()
    up = ManagedProcess(["up", "--port", str(port)], env=env, log_path=tmp_path / "up.log")
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/ready"), 60, "the stack")
        [server] = [
            pid
            for pid in children_of(up.pid)
            if b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        # redis-server shows `redis-server 127.0.0.1:PORT` as its command line.
        shown = Path(f"/proc/{server}/cmdline").read_bytes().decode()
        address = shown.split()[-1].rstrip("\0")
        host, _, redis_port = address.rpartition(":")
        assert host == "127.0.0.1", shown
        with (
            redis.Redis(port=int(redis_port)) as anonymous,
            pytest.raises(redis.AuthenticationError),
        ):
            anonymous.keys("*")
        urls = {e["CCFLEET_REDIS_URL"] for e in worker_environments(up.pid)}
        [url] = urls
        password = urlsplit(url).password
        assert password and len(password) >= 24
        assert password not in up.log_text()
        with redis.Redis.from_url(url) as owner:
            assert owner.ping()
    finally:
        up.stop()
