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
from typing import Any

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
