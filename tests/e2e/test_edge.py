"""The front end's edge: what it checks before any work, on real `ccfleet api` processes.

No key, no work (the body of a request without a valid key is never read); only JSON bodies;
a Host allow-list and an Origin check, so that a web page (DNS rebinding, a cross-site form)
cannot use a fleet whose auth is off; batches owned by a key's immutable id, never its name;
ids checked against their pattern before any Redis use.

No worker runs: every batch here has only invalid requests, so it ends as it is created.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import SecretStr
from redis import Redis as SyncRedis
from redis.asyncio import Redis as AsyncRedis

from ccfleet.embedded_redis import EmbeddedRedis
from shared.access.client_keys import KeyStore
from shared.broker import redis_keys
from tests import client_keys, loopback
from tests.conftest import Stack, StackFactory
from tests.fakes.upstream import FakeUpstream
from tests.processes import http_ok, wait_until

SERVER_SECRET = "edge-test-server-secret-" + "0123456789abcdef" * 2
KEYED_ENV = {"CCFLEET_AUTH": "on", "CCFLEET_AUTH_SECRET": SERVER_SECRET}
ALLOWED_ORIGIN = "https://console.example"
CONFIGURED_ENV = {
    **KEYED_ENV,
    "CCFLEET_ALLOWED_HOSTS": json.dumps(["ccfleet-api", "fleet.example"]),
    "CCFLEET_CORS_ORIGINS": json.dumps([ALLOWED_ORIGIN]),
}
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


@pytest.fixture(scope="module")
def configured(front_ends: FrontEnds) -> str:
    """A front end with auth on, allowed hosts and a CORS origin."""
    return front_ends.add(**CONFIGURED_ENV)


def new_key(front_ends: FrontEnds, name: str, **limits: Any) -> str:
    return asyncio.run(
        client_keys.create_key(front_ends.stack.redis.url, SERVER_SECRET, name, **limits)
    )


def revoke(front_ends: FrontEnds, name: str) -> None:
    asyncio.run(client_keys.revoke_key(front_ends.stack.redis.url, SERVER_SECRET, name))


def create_batch(url: str, secret: str | None = None) -> dict[str, Any]:
    headers = {"x-api-key": secret} if secret else {}
    reply = loopback.post(
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
        reply = loopback.get(base + path, headers=headers, timeout=BOUND_S)
        assert reply.status_code == 404, (path, reply.text)
        assert error_of(reply)["type"] == "not_found_error"
    listed = loopback.get(base, headers=headers, timeout=BOUND_S).json()
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
    reply = loopback.get(
        f"{front_ends.keyed}/v1/messages/batches/{batch['id']}/results",
        headers={"x-api-key": secret},
        timeout=BOUND_S,
    )
    assert reply.status_code == 200, reply.text


def test_a_batch_from_before_key_ids_is_seen_by_admin_keys_only(front_ends: FrontEnds) -> None:
    secret = new_key(front_ends, "carol")
    admin = new_key(front_ends, "carol-admin", admin=True)
    batch = create_batch(front_ends.keyed, secret)
    client = SyncRedis.from_url(front_ends.stack.redis.url)
    try:
        client.hdel(redis_keys.batch(batch["id"]), "owner_id")  # as stored before ids
    finally:
        client.close()
    url = f"{front_ends.keyed}/v1/messages/batches/{batch['id']}"
    assert loopback.get(url, headers={"x-api-key": secret}, timeout=BOUND_S).status_code == 404
    assert loopback.get(url, headers={"x-api-key": admin}, timeout=BOUND_S).status_code == 200


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
        reply = loopback.request(
            method,
            f"{front_ends.open}/v1/messages/batches/{batch['id']}{suffix}{path}",
            headers=JSON,
            timeout=BOUND_S,
        )
        assert reply.status_code == 404, (method, path, reply.text)
        assert error_of(reply)["type"] == "not_found_error"


def test_a_listing_cursor_off_the_batch_id_pattern_is_a_400(front_ends: FrontEnds) -> None:
    for cursor in ("before_id", "after_id"):
        reply = loopback.get(
            f"{front_ends.open}/v1/messages/batches",
            params={cursor: "msgbatch_x:results"},
            timeout=BOUND_S,
        )
        assert reply.status_code == 400, reply.text
        assert error_of(reply)["type"] == "invalid_request_error"
        assert error_of(reply)["message"].startswith(cursor)


# --- only JSON ------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-www-form-urlencoded"])
def test_a_post_that_is_not_application_json_is_415_and_creates_nothing(
    front_ends: FrontEnds, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    url = f"{front_ends.open}/v1/messages/batches"
    before = loopback.get(url, timeout=BOUND_S).json()["data"]
    reply = loopback.post(
        url, content=json.dumps(INVALID_ONLY_BATCH).encode(), headers=headers, timeout=BOUND_S
    )
    assert reply.status_code == 415, reply.text
    assert error_of(reply)["type"] == "invalid_request_error"
    assert loopback.get(url, timeout=BOUND_S).json()["data"] == before


def test_a_post_that_is_not_json_is_415_in_openais_shape_on_its_path(
    front_ends: FrontEnds,
) -> None:
    reply = loopback.post(
        f"{front_ends.open}/v1/chat/completions",
        content=b'{"model": "sonnet", "messages": []}',
        headers={"content-type": "text/plain"},
        timeout=BOUND_S,
    )
    assert reply.status_code == 415, reply.text
    assert error_of(reply)["type"] == "invalid_request_error"
    assert "x-request-id" in reply.headers


def test_json_with_a_charset_is_json(front_ends: FrontEnds) -> None:
    reply = loopback.post(
        f"{front_ends.open}/v1/messages/batches",
        content=json.dumps(INVALID_ONLY_BATCH).encode(),
        headers={"content-type": "application/json; charset=utf-8"},
        timeout=BOUND_S,
    )
    assert reply.status_code == 200, reply.text


# --- the Host allow-list --------------------------------------------------------------------


def test_with_auth_off_a_host_other_than_a_loopback_name_is_refused(
    front_ends: FrontEnds,
) -> None:
    port = urlsplit(front_ends.open).port
    for path in ("/v1/fleet", "/v1/messages/batches", "/metrics"):
        reply = loopback.get(
            f"{front_ends.open}{path}", headers={"host": "rebound.example"}, timeout=BOUND_S
        )
        assert reply.status_code == 400, (path, reply.text)
        assert error_of(reply)["type"] == "invalid_request_error"
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
        reply = loopback.get(f"{front_ends.open}/v1/fleet", headers={"host": host}, timeout=BOUND_S)
        assert reply.status_code == 200, (host, reply.text)


def test_probes_answer_whatever_the_host(front_ends: FrontEnds, configured: str) -> None:
    # The kubelet's httpGet probes send the pod's IP as the Host.
    for url in (front_ends.open, configured):
        reply = loopback.get(f"{url}/health", headers={"host": "10.1.2.3:8080"}, timeout=BOUND_S)
        assert reply.status_code == 200, reply.text


def test_with_auth_on_the_allowed_hosts_and_loopback_names_are_served(
    front_ends: FrontEnds, configured: str
) -> None:
    secret = new_key(front_ends, "hosts-check")
    for host, status in (
        ("ccfleet-api:8080", 200),
        ("fleet.example", 200),
        ("localhost", 200),
        ("rebound.example", 400),
    ):
        reply = loopback.get(
            f"{configured}/v1/models",
            headers={"host": host, "x-api-key": secret},
            timeout=BOUND_S,
        )
        assert reply.status_code == status, (host, reply.text)


def test_results_url_names_the_allowed_host_the_request_used(front_ends: FrontEnds) -> None:
    port = urlsplit(front_ends.open).port
    reply = loopback.post(
        f"{front_ends.open}/v1/messages/batches",
        json=INVALID_ONLY_BATCH,
        headers={"host": f"localhost:{port}"},
        timeout=BOUND_S,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["results_url"].startswith(f"http://localhost:{port}/v1/messages/batches/")
    refused = loopback.post(
        f"{front_ends.open}/v1/messages/batches",
        json=INVALID_ONLY_BATCH,
        headers={"host": "rebound.example"},
        timeout=BOUND_S,
    )
    assert refused.status_code == 400
    assert "rebound.example" not in refused.text


# --- origins -------------------------------------------------------------------------------


def test_a_cross_origin_request_is_403_unless_its_origin_is_allowed(
    front_ends: FrontEnds,
) -> None:
    reply = loopback.post(
        f"{front_ends.open}/v1/messages/batches",
        json=INVALID_ONLY_BATCH,
        headers={"origin": "https://evil.example"},
        timeout=BOUND_S,
    )
    assert reply.status_code == 403, reply.text
    assert error_of(reply)["type"] == "permission_error"
    same_origin = loopback.get(
        f"{front_ends.open}/v1/fleet", headers={"origin": front_ends.open}, timeout=BOUND_S
    )
    assert same_origin.status_code == 200, same_origin.text


def test_an_allowed_origin_gets_cors_headers_and_its_preflight_is_answered(
    front_ends: FrontEnds, configured: str
) -> None:
    secret = new_key(front_ends, "cors-check")
    preflight = loopback.options(
        f"{configured}/v1/messages",
        headers={
            "origin": ALLOWED_ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "x-api-key, content-type, anthropic-version",
        },
        timeout=BOUND_S,
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    reply = loopback.get(
        f"{configured}/v1/models",
        headers={"origin": ALLOWED_ORIGIN, "x-api-key": secret},
        timeout=BOUND_S,
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    refused = loopback.get(
        f"{configured}/v1/models",
        headers={"origin": "https://evil.example", "x-api-key": secret},
        timeout=BOUND_S,
    )
    assert refused.status_code == 403, refused.text


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
        # Closed before its loop ends, or the transport's finalizer warns in a later test.
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return status_line


def test_three_unauthenticated_100_mb_batch_bodies_grow_the_front_end_by_at_most_20_mb(
    front_ends: FrontEnds,
) -> None:
    url = front_ends.add(**KEYED_ENV)  # its own process: no earlier peak hides this one
    api = front_ends.stack.apis[-1]
    loopback.post(f"{url}/v1/messages/batches", json=INVALID_ONLY_BATCH, timeout=BOUND_S)  # warm
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


def test_a_key_check_during_a_redis_outage_is_529_overloaded_not_a_500(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(workers=0, wait_ready=False, **KEYED_ENV)
    wait_until(lambda: http_ok(f"{stack.url}/health"), BOUND_S, "the front end")
    stack.redis.kill()
    reply = loopback.get(
        f"{stack.url}/v1/models", headers={"x-api-key": "sk-ccf-x"}, timeout=BOUND_S
    )
    assert reply.status_code == 529, reply.text
    assert error_of(reply)["type"] == "overloaded_error"
    assert reply.headers["retry-after"] == "1"
