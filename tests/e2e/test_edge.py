"""The front end's edge: what it checks before any work, on real `ccfleet api` processes.

No key, no work (the body of a request without a valid key is never read); only JSON bodies;
a Host allow-list and an Origin check, so that a web page (DNS rebinding, a cross-site form)
cannot use a fleet whose auth is off; batches owned by a key's immutable id, never its name;
ids checked against their pattern before any Redis use.

No worker runs: every batch here has only invalid requests, so it ends as it is created.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis as AsyncRedis

from ccfleet.embedded_redis import EmbeddedRedis
from shared.access.client_keys import KeyLimits, KeyStore
from tests.conftest import Stack
from tests.fakes.upstream import FakeUpstream
from tests.processes import http_ok, wait_until

SERVER_SECRET = "edge-test-server-secret-" + "0123456789abcdef" * 2
KEYED_ENV = {"CCFLEET_AUTH": "on", "CCFLEET_AUTH_SECRET": SERVER_SECRET}
# Ends at once, as errored: params without `messages` are invalid.
INVALID_ONLY_BATCH = {"requests": [{"custom_id": "a", "params": {"model": "claude-sonnet-4-5"}}]}
JSON = {"content-type": "application/json"}
BOUND_S = 30.0


@dataclass
class FrontEnds:
    """Front ends on one Redis, none with a worker: auth off, and auth on."""

    stack: Stack
    open: str
    keyed: str

    def add(self, **env: str) -> str:
        """One more front end on this Redis; its URL once it answers."""
        self.stack.add_api(**env)
        url = self.stack.api_urls[-1]
        wait_until(lambda: http_ok(f"{url}/health"), BOUND_S, f"{url}/health")
        return url


@pytest.fixture(scope="module")
def front_ends(
    tmp_path_factory: pytest.TempPathFactory, session_upstream: FakeUpstream, claude_bin: str
) -> Iterator[FrontEnds]:
    root = tmp_path_factory.mktemp("edge")
    with EmbeddedRedis(root / "redis") as server:
        stack = Stack(redis=server, upstream=session_upstream, claude_bin=claude_bin, root=root)
        try:
            stack.add_api()
            stack.add_api(**KEYED_ENV)
            for url in stack.api_urls:
                wait_until(partial(http_ok, f"{url}/health"), BOUND_S, f"{url}/health")
            yield FrontEnds(stack, *stack.api_urls)
        finally:
            stack.stop()


async def _new_key(redis_url: str, name: str, **limits: Any) -> str:
    client = AsyncRedis.from_url(redis_url)
    try:
        _, secret = await KeyStore(client, SecretStr(SERVER_SECRET)).create(
            name, KeyLimits(**limits)
        )
    finally:
        await client.aclose()
    return secret


async def _revoke(redis_url: str, name: str) -> None:
    client = AsyncRedis.from_url(redis_url)
    try:
        await KeyStore(client, SecretStr(SERVER_SECRET)).revoke(name)
    finally:
        await client.aclose()


def new_key(front_ends: FrontEnds, name: str, **limits: Any) -> str:
    return asyncio.run(_new_key(front_ends.stack.redis.url, name, **limits))


def revoke(front_ends: FrontEnds, name: str) -> None:
    asyncio.run(_revoke(front_ends.stack.redis.url, name))


def create_batch(url: str, secret: str | None = None) -> dict[str, Any]:
    headers = {"x-api-key": secret} if secret else {}
    reply = httpx.post(
        f"{url}/v1/messages/batches", json=INVALID_ONLY_BATCH, headers=headers, timeout=BOUND_S
    )
    assert reply.status_code == 200, reply.text
    batch: dict[str, Any] = reply.json()
    assert batch["processing_status"] == "ended"
    return batch


def error_of(reply: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = reply.json()
    error: dict[str, Any] = body["error"]
    return error


# --- ownership by immutable key id ---------------------------------------------------------


def test_a_new_key_under_a_revoked_keys_name_cannot_see_the_old_keys_batches(
    front_ends: FrontEnds,
) -> None:
    old = new_key(front_ends, "alice")
    batch = create_batch(front_ends.keyed, old)
    revoke(front_ends, "alice")
    new = new_key(front_ends, "alice")
    headers = {"x-api-key": new}
    base = f"{front_ends.keyed}/v1/messages/batches"
    for path in (f"/{batch['id']}", f"/{batch['id']}/results"):
        reply = httpx.get(base + path, headers=headers, timeout=BOUND_S)
        assert reply.status_code == 404, (path, reply.text)
        assert error_of(reply)["type"] == "not_found_error"
    listed = httpx.get(base, headers=headers, timeout=BOUND_S).json()
    assert batch["id"] not in [b["id"] for b in listed["data"]]


def test_a_key_still_sees_its_own_batches_after_its_limits_change(
    front_ends: FrontEnds,
) -> None:
    secret = new_key(front_ends, "bob")
    batch = create_batch(front_ends.keyed, secret)

    async def loosen() -> None:
        client = AsyncRedis.from_url(front_ends.stack.redis.url)
        try:
            await KeyStore(client, SecretStr(SERVER_SECRET)).update("bob", {"rpm": 100})
        finally:
            await client.aclose()

    asyncio.run(loosen())
    reply = httpx.get(
        f"{front_ends.keyed}/v1/messages/batches/{batch['id']}/results",
        headers={"x-api-key": secret},
        timeout=BOUND_S,
    )
    assert reply.status_code == 200, reply.text


# --- ids checked against their pattern -----------------------------------------------------


@pytest.mark.parametrize("suffix", [":results", ":requests", ":inflight", "%2Fx", "x"])
def test_a_batch_id_off_its_pattern_is_404_even_when_it_names_a_real_batchs_redis_key(
    front_ends: FrontEnds, suffix: str
) -> None:
    batch = create_batch(front_ends.open)
    for method, path in (
        ("GET", ""),
        ("GET", "/results"),
        ("POST", "/cancel"),
        ("DELETE", ""),
    ):
        reply = httpx.request(
            method,
            f"{front_ends.open}/v1/messages/batches/{batch['id']}{suffix}{path}",
            headers=JSON,
            timeout=BOUND_S,
        )
        assert reply.status_code == 404, (method, path, reply.text)
        assert error_of(reply)["type"] == "not_found_error"


def test_a_listing_cursor_off_the_batch_id_pattern_is_404(front_ends: FrontEnds) -> None:
    for cursor in ("before_id", "after_id"):
        reply = httpx.get(
            f"{front_ends.open}/v1/messages/batches",
            params={cursor: "msgbatch_x:results"},
            timeout=BOUND_S,
        )
        assert reply.status_code == 404, reply.text
        assert error_of(reply)["type"] == "not_found_error"


# --- no work before the key ---------------------------------------------------------------


def _memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


async def _post_unauthenticated(host: str, port: int, body_bytes: int) -> bytes:
    """Send a POST of `body_bytes` with no key, as fast as the server takes it, until it
    answers: the status line it answered with."""
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"POST /v1/messages/batches HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {body_bytes}\r\n\r\n"
    )
    writer.write(head.encode())
    chunk = b" " * (1 << 20)

    async def send_body() -> None:
        sent = 0
        while sent < body_bytes:
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)

    sending = asyncio.create_task(send_body())
    try:
        status_line = await reader.readline()
    finally:
        sending.cancel()
        ended = await asyncio.gather(sending, return_exceptions=True)
        assert all(e is None or isinstance(e, (asyncio.CancelledError, OSError)) for e in ended)
        writer.close()
    return status_line


def test_three_unauthenticated_100_mb_batch_bodies_grow_the_front_end_by_at_most_20_mb(
    front_ends: FrontEnds,
) -> None:
    url = front_ends.add(**KEYED_ENV)  # its own process: no earlier peak hides this one
    api = front_ends.stack.apis[-1]
    httpx.post(f"{url}/v1/messages/batches", json=INVALID_ONLY_BATCH, timeout=BOUND_S)  # warm
    before_kb = _memory_kb(api.pid, "VmHWM")
    host, port = urlsplit(url).hostname, urlsplit(url).port
    assert host is not None and port is not None

    async def three() -> list[bytes]:
        posts = [_post_unauthenticated(host, port, 100 << 20) for _ in range(3)]
        return await asyncio.wait_for(asyncio.gather(*posts), timeout=120)

    for status_line in asyncio.run(three()):
        assert status_line.startswith(b"HTTP/1.1 401"), status_line
    grown_mb = (_memory_kb(api.pid, "VmHWM") - before_kb) / 1024
    assert grown_mb <= 20, f"peak RSS grew by {grown_mb:.0f} MB"
