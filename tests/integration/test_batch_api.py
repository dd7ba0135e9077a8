"""The Message Batches API in one front end (in process, real Redis, no workers): listing
and paging, deleting, limits, expiry, and which client key sees which batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2  # the anthropic SDK's own HTTP client package
import orjson
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from api.app import create_app
from ccfleet.embedded_redis import EmbeddedRedis
from shared.access.client_keys import KeyLimits, KeyStore
from shared.settings import Settings
from tests.sdk import error_body

MODEL = "claude-sonnet-4-5"


SECRET = "s" * 32  # the server secret keying client keys' hashes


def settings_for(redis_server: EmbeddedRedis, **overrides: Any) -> Settings:
    """Auth off unless asked: these tests are about batches, not keys. The clients reach the
    app as `http://fe`: an allowed host."""
    defaults: dict[str, Any] = {
        "redis_url": redis_server.url,
        "auth": "off",
        "allowed_hosts": ["fe"],
    }
    return Settings(**{**defaults, **overrides})


@pytest.fixture
async def front_end(redis_server: EmbeddedRedis) -> AsyncIterator[httpx2.AsyncClient]:
    app = create_app(settings_for(redis_server, public_url="https://fleet.example"))
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://fe") as http:
            yield http


def sdk(http: httpx2.AsyncClient, key: str = "k") -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url="http://fe", api_key=key, http_client=http, max_retries=0
    )


def invalid_only(custom_id: str = "x") -> list[Any]:
    """A batch whose one request is refused: it ends at once, without a worker."""
    return [{"custom_id": custom_id, "params": {"model": MODEL, "messages": []}}]


def valid(custom_id: str = "x") -> list[Any]:
    params = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    return [{"custom_id": custom_id, "params": params}]


async def test_batches_list_newest_first_in_pages_both_ways(
    front_end: httpx2.AsyncClient,
) -> None:
    client = sdk(front_end)
    ids = [(await client.messages.batches.create(requests=invalid_only())).id for _ in range(5)]
    newest_first = ids[::-1]

    first = await client.messages.batches.list(limit=2)
    assert [b.id for b in first.data] == newest_first[:2]
    assert first.has_more
    assert (first.first_id, first.last_id) == (newest_first[0], newest_first[1])
    assert first.last_id is not None
    second = await client.messages.batches.list(limit=2, after_id=first.last_id)
    assert [b.id for b in second.data] == newest_first[2:4]
    assert second.last_id is not None
    last = await client.messages.batches.list(limit=2, after_id=second.last_id)
    assert [b.id for b in last.data] == newest_first[4:]
    assert not last.has_more
    back = await client.messages.batches.list(limit=2, before_id=newest_first[3])
    assert [b.id for b in back.data] == newest_first[1:3]
    assert back.has_more
    assert [b.id async for b in await client.messages.batches.list(limit=2)] == newest_first


async def test_an_ended_batch_can_be_deleted_and_is_then_not_found(
    front_end: httpx2.AsyncClient,
) -> None:
    client = sdk(front_end)
    done = await client.messages.batches.create(requests=invalid_only())
    running = await client.messages.batches.create(requests=valid())
    assert done.processing_status == "ended"
    assert done.results_url == f"https://fleet.example/v1/messages/batches/{done.id}/results"

    deleted = await client.messages.batches.delete(done.id)

    assert (deleted.id, deleted.type) == (done.id, "message_batch_deleted")
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.batches.retrieve(done.id)
    with pytest.raises(anthropic.BadRequestError):
        await client.messages.batches.delete(running.id)  # still in progress
    assert [b.id for b in (await client.messages.batches.list()).data] == [running.id]


async def test_canceling_a_batch_no_worker_took_yet_ends_it_with_every_request_canceled(
    front_end: httpx2.AsyncClient,
) -> None:
    client = sdk(front_end)
    batch = await client.messages.batches.create(requests=valid("a") + valid("b"))

    canceled = await client.messages.batches.cancel(batch.id)

    assert canceled.processing_status == "ended"
    assert canceled.request_counts.canceled == 2
    results = [r async for r in await client.messages.batches.results(batch.id)]
    assert sorted((r.custom_id, r.result.type) for r in results) == [
        ("a", "canceled"),
        ("b", "canceled"),
    ]


async def test_a_batch_is_visible_only_to_its_key_and_to_admin_keys(
    redis_server: EmbeddedRedis,
) -> None:
    app = create_app(settings_for(redis_server, auth="on", auth_secret=SECRET))
    redis = Redis.from_url(redis_server.url)
    store = KeyStore(redis, SecretStr(SECRET))
    _, alice_key = await store.create("alice", KeyLimits())
    _, bob_key = await store.create("bob", KeyLimits())
    _, admin_key = await store.create("ops", KeyLimits(admin=True))
    _, interactive_only = await store.create("chat", KeyLimits(lanes=["interactive"]))
    await redis.aclose()
    async with (
        app.router.lifespan_context(app),
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://fe") as http,
    ):
        alice, bob, admin = sdk(http, alice_key), sdk(http, bob_key), sdk(http, admin_key)
        mine = await alice.messages.batches.create(requests=invalid_only())

        with pytest.raises(anthropic.NotFoundError):
            await bob.messages.batches.retrieve(mine.id)
        with pytest.raises(anthropic.NotFoundError):
            await bob.messages.batches.results(mine.id)
        with pytest.raises(anthropic.NotFoundError):
            await bob.messages.batches.cancel(mine.id)
        with pytest.raises(anthropic.NotFoundError):
            await bob.messages.batches.delete(mine.id)
        assert (await bob.messages.batches.list()).data == []
        assert (await admin.messages.batches.retrieve(mine.id)).id == mine.id
        assert [b.id for b in (await admin.messages.batches.list()).data] == [mine.id]
        assert [b.id for b in (await alice.messages.batches.list()).data] == [mine.id]
        with pytest.raises(anthropic.AuthenticationError):
            await sdk(http, "not-a-key").messages.batches.list()
        with pytest.raises(anthropic.PermissionDeniedError):
            await sdk(http, interactive_only).messages.batches.create(requests=valid())


async def test_a_batch_no_worker_ran_expires_and_is_gone_after_its_retention(
    redis_server: EmbeddedRedis,
) -> None:
    settings = settings_for(redis_server, batch_expiry_s=0.5, batch_retention_s=1)
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://fe") as http,
    ):
        client = sdk(http)
        batch = await client.messages.batches.create(requests=valid("a") + valid("b"))

        deadline = asyncio.get_running_loop().time() + 10
        while (
            listed := (await client.messages.batches.list()).data[0]
        ).processing_status != "ended":
            assert asyncio.get_running_loop().time() < deadline, "not expired in a listing"
            await asyncio.sleep(0.05)

        assert listed.request_counts.expired == 2
        results = [r async for r in await client.messages.batches.results(batch.id)]
        assert [r.result.type for r in results] == ["expired", "expired"]
        with pytest.raises(anthropic.NotFoundError):
            await poll(client, batch.id, lambda _: False)  # until retention removes it
        assert (await client.messages.batches.list()).data == []


async def poll(
    client: anthropic.AsyncAnthropic, batch_id: str, until: Any, timeout_s: float = 10
) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        batch = await client.messages.batches.retrieve(batch_id)
        if until(batch):
            return batch
        await asyncio.sleep(0.05)
    raise AssertionError(f"batch {batch_id} did not get there within {timeout_s}s")


async def test_a_batch_body_over_its_limit_is_413_while_messages_keep_their_own_limit(
    redis_server: EmbeddedRedis,
) -> None:
    settings = settings_for(redis_server, max_body_bytes=1000, batch_max_body_bytes=4000)
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://fe") as http,
    ):
        client = sdk(http)
        ten = [valid(f"r{i}")[0] for i in range(10)]
        assert 1000 < len(orjson.dumps({"requests": ten})) < 4000
        fits = await client.messages.batches.create(requests=ten)
        assert fits.request_counts.processing == 10  # over the Messages limit, under the batch one

        with pytest.raises(anthropic.APIStatusError) as refused:
            await client.messages.batches.create(requests=[valid(f"r{i}")[0] for i in range(40)])
        assert refused.value.status_code == 413
        assert error_body(refused.value)["error"]["type"] == "request_too_large"


async def test_a_batch_that_would_pass_the_redis_memory_budget_is_529_and_nothing_is_kept(
    redis_server: EmbeddedRedis,
) -> None:
    app = create_app(settings_for(redis_server, redis_memory_budget_bytes=1))
    async with (
        app.router.lifespan_context(app),
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://fe") as http,
    ):
        client = sdk(http)
        with pytest.raises(anthropic.APIStatusError) as refused:
            await client.messages.batches.create(requests=valid())
        assert refused.value.status_code == 529
        assert error_body(refused.value)["error"]["type"] == "overloaded_error"
        assert (await client.messages.batches.list()).data == []
