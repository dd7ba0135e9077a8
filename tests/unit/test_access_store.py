"""Client keys, quotas and the ledger in Redis, without front ends or the CLI."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta

import orjson
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from shared.access.client_keys import ClientKey, KeyLimits, KeyStore, KeyStoreError
from shared.access.ledger import LedgerEntry, Usage, read_usage, record_usage, today_utc
from shared.access.quotas import Quotas
from shared.broker import redis_keys
from shared.errors import RateLimited

SERVER_SECRET = SecretStr("s" * 40)
LEASE_S = 600.0


@pytest.fixture
def store(redis: Redis) -> KeyStore:
    return KeyStore(redis, SERVER_SECRET)


async def every_value_in(redis: Redis) -> bytes:
    """Every key name and every value Redis holds, as one blob to search."""
    parts: list[bytes] = []
    async for name in redis.scan_iter():
        parts.append(name)
        kind = (await redis.type(name)).decode()
        if kind == "string":
            parts.append(await redis.get(name) or b"")
        elif kind == "hash":
            for field, value in (await redis.hgetall(name)).items():  # type: ignore[misc]  # redis-py 5 types it sync-or-async
                parts += [field, value]
        elif kind == "set":
            parts += list(await redis.smembers(name))  # type: ignore[misc]  # redis-py 5 types it sync-or-async
        elif kind == "zset":
            parts += await redis.zrange(name, 0, -1)
    return b"\n".join(parts)


async def test_a_key_is_found_by_its_secret_and_only_its_keyed_hash_is_stored(
    store: KeyStore, redis: Redis
) -> None:
    key, secret = await store.create("alice", KeyLimits(rpm=5))
    assert secret.startswith("sk-ccf-")
    found = await store.find(secret)
    assert found is not None and found.name == "alice" and found.rpm == 5
    assert await store.find(secret + "x") is None
    assert secret.encode() not in await every_value_in(redis)
    assert key.digest.encode() in await every_value_in(redis)


async def test_a_different_server_secret_finds_no_key(store: KeyStore, redis: Redis) -> None:
    _, secret = await store.create("alice", KeyLimits())
    other = KeyStore(redis, SecretStr("t" * 40))
    assert await other.find(secret) is None


def test_a_short_server_secret_is_refused(redis: Redis) -> None:
    with pytest.raises(KeyStoreError, match="at least 32"):
        KeyStore(redis, SecretStr("short"))


async def test_a_revoked_key_is_not_found_and_an_update_does_not_revive_it(
    store: KeyStore,
) -> None:
    _, secret = await store.create("alice", KeyLimits())
    await store.revoke("alice")
    assert await store.find(secret) is None
    with pytest.raises(KeyStoreError, match="no key named"):
        await store.update("alice", {"rpm": 3})
    assert await store.list() == []


async def test_a_name_is_taken_until_its_key_is_revoked(store: KeyStore) -> None:
    _, first = await store.create("alice", KeyLimits())
    with pytest.raises(KeyStoreError, match="exists"):
        await store.create("alice", KeyLimits())
    await store.revoke("alice")
    _, second = await store.create("alice", KeyLimits(admin=True))
    assert await store.find(first) is None
    found = await store.find(second)
    assert found is not None and found.admin


async def test_a_key_keeps_its_id_through_updates_and_a_new_key_under_its_name_has_another(
    store: KeyStore,
) -> None:
    first, _ = await store.create("alice", KeyLimits())
    assert (await store.update("alice", {"rpm": 3})).id == first.id
    await store.revoke("alice")
    second, secret = await store.create("alice", KeyLimits())
    found = await store.find(secret)
    assert found is not None and found.id == second.id != first.id


async def test_a_key_stored_before_ids_existed_has_a_stable_id_of_its_own(
    store: KeyStore, redis: Redis
) -> None:
    ids = []
    for name in ("old-a", "old-b"):
        key, secret = await store.create(name, KeyLimits())
        record = key.model_dump(exclude={"id"})  # as written before keys had ids
        await redis.set(redis_keys.client_key(key.digest), orjson.dumps(record))
        found, again = await store.find(secret), await store.find(secret)
        assert found is not None and again is not None
        assert found.id == again.id != key.id
        ids.append(found.id)
    assert ids[0] != ids[1]


async def test_an_update_changes_only_the_limits_given(store: KeyStore) -> None:
    await store.create("alice", KeyLimits(rpm=5, tpm=1000, models=["claude-*"]))
    updated = await store.update("alice", {"rpm": None, "concurrency": 2})
    assert (updated.rpm, updated.tpm, updated.concurrency) == (None, 1000, 2)
    assert updated.models == ["claude-*"]
    assert (await store.get("alice")).concurrency == 2


def test_lanes_and_model_patterns_decide_what_a_key_may_use() -> None:
    key = ClientKey(
        name="k",
        digest="d",
        created_at=0,
        lanes=["interactive"],
        models=["claude-haiku-*", "haiku"],
    )
    assert key.allows_lane("interactive") and not key.allows_lane("batch")
    assert key.allows_model("claude-haiku-4-5") and key.allows_model("haiku")
    assert not key.allows_model("claude-sonnet-4-5")
    assert ClientKey(name="k", digest="d", created_at=0).allows_model("anything")


def limited(**limits: object) -> ClientKey:
    return ClientKey.model_validate({"name": "alice", "digest": "d", "created_at": 0, **limits})


async def test_requests_per_minute_admit_exactly_the_limit_from_two_clients_at_once(
    redis_clients: Callable[[], Redis],
) -> None:
    quotas = [Quotas(redis_clients()) for _ in range(2)]
    key = limited(rpm=5)

    async def attempt(i: int) -> float | None:
        try:
            await quotas[i % 2].admit(key, f"req_{i}", lease_s=LEASE_S)
        except RateLimited as limit:
            return limit.retry_after_s
        return None

    outcomes = await asyncio.gather(*(attempt(i) for i in range(20)))
    refused = [wait for wait in outcomes if wait is not None]
    assert len(refused) == 15
    assert all(1 <= wait <= 60 for wait in refused)


async def test_concurrency_counts_leases_until_they_are_released(redis: Redis) -> None:
    quotas = Quotas(redis)
    key = limited(concurrency=1)
    lease = await quotas.admit(key, "req_1", lease_s=LEASE_S)
    with pytest.raises(RateLimited, match="concurrent requests"):
        await quotas.admit(key, "req_2", lease_s=LEASE_S)
    await quotas.release(lease)
    await quotas.admit(key, "req_3", lease_s=LEASE_S)


async def test_an_expired_lease_frees_its_place(redis: Redis) -> None:
    """A front end that died never releases its leases: they end by themselves."""
    quotas = Quotas(redis)
    key = limited(concurrency=1)
    await quotas.admit(key, "req_1", lease_s=-1)  # a lease that has ended
    await quotas.admit(key, "req_2", lease_s=LEASE_S)


async def book(redis: Redis, key: str | None, usage: Usage, *, errors: int = 0) -> float:
    entry = LedgerEntry(
        key=key,
        account="acct",
        model="claude-sonnet-4-5",
        attempt_id=f"job_{time.monotonic_ns()}:1",
        usage=usage,
        requests=1,
        errors=errors,
    )
    return await record_usage(redis, entry, now_s=time.time(), retention_days=30)


async def test_tokens_per_minute_count_the_tokens_booked_and_say_when_there_is_room(
    redis: Redis,
) -> None:
    quotas = Quotas(redis)
    key = limited(tpm=100)
    await quotas.admit(key, "req_1", lease_s=LEASE_S)
    await book(redis, "alice", Usage(input_tokens=70, output_tokens=40, cache_read_tokens=500))
    with pytest.raises(RateLimited, match="tokens per minute") as refused:
        await quotas.admit(key, "req_2", lease_s=LEASE_S)
    assert refused.value.retry_after_s is not None and 55 <= refused.value.retry_after_s <= 60


async def test_a_tokens_reservation_fits_exactly_the_limit_and_ends_with_its_job(
    redis: Redis,
) -> None:
    quotas = Quotas(redis)
    key = limited(tpm=100)
    await quotas.admit(key, "req_1", lease_s=LEASE_S, tokens=60)
    with pytest.raises(RateLimited, match="tokens per minute") as refused:
        await quotas.admit(key, "req_2", lease_s=LEASE_S, tokens=41)  # 60 + 41 > 100
    assert refused.value.retry_after_s is not None and 55 <= refused.value.retry_after_s <= 60
    await quotas.admit(key, "req_3", lease_s=LEASE_S, tokens=40)  # 60 + 40: exactly the limit

    await quotas.end("alice", "req_1")  # its job ended; the ledger books what it used
    await book(redis, "alice", Usage(input_tokens=5, output_tokens=5))
    await quotas.admit(key, "req_4", lease_s=LEASE_S, tokens=50)  # 40 + 10 + 50


async def test_a_request_reserving_more_than_the_limit_is_told_not_to_retry(
    redis: Redis,
) -> None:
    with pytest.raises(RateLimited, match="more than this API key's limit") as refused:
        await Quotas(redis).admit(limited(tpm=1), "req_1", lease_s=LEASE_S, tokens=128_000)
    assert refused.value.should_retry is False and refused.value.retry_after_s == 60


async def test_a_monthly_budget_refuses_until_the_month_turns_and_says_not_to_retry(
    redis: Redis,
) -> None:
    quotas = Quotas(redis)
    key = limited(monthly_usd=0.01)
    await quotas.admit(key, "req_1", lease_s=LEASE_S)
    await book(redis, "alice", Usage(input_tokens=1, cost_usd=0.012))
    with pytest.raises(RateLimited, match="monthly budget") as refused:
        await quotas.admit(key, "req_2", lease_s=LEASE_S)
    assert refused.value.retry_after_s is not None and refused.value.retry_after_s >= 1
    if refused.value.retry_after_s > 300:
        assert refused.value.should_retry is False


async def test_the_ledger_sums_days_per_key_account_and_model(redis: Redis) -> None:
    spend = await book(
        redis,
        "alice",
        Usage(
            input_tokens=1000,
            output_tokens=500,
            cache_read_tokens=2000,
            cache_write_tokens=300,
            cost_usd=0.012225,
        ),
    )
    spend = await book(redis, None, Usage(input_tokens=10, output_tokens=5), errors=1)
    assert spend == pytest.approx(0.012225)
    by_key = await read_usage(redis, by="key", since=today_utc())
    assert by_key == [
        {
            "key": "alice",
            "requests": 1,
            "errors": 0,
            "input_tokens": 1000,
            "output_tokens": 500,
            "cache_read_tokens": 2000,
            "cache_write_tokens": 300,
            "cost_usd": 0.012225,
        },
        {
            "key": "-",
            "requests": 1,
            "errors": 1,
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "cost_usd": 0.0,
        },
    ]
    (by_account,) = await read_usage(redis, by="account", since=today_utc() - timedelta(days=3))
    assert by_account["account"] == "acct" and by_account["requests"] == 2
    (by_model,) = await read_usage(redis, by="model", since=today_utc())
    assert by_model["model"] == "claude-sonnet-4-5" and by_model["input_tokens"] == 1010


async def test_a_shorter_lease_does_not_cut_a_longer_one_short(redis: Redis) -> None:
    quotas = Quotas(redis)
    key = limited(concurrency=2)
    await quotas.admit(key, "req_batch", lease_s=86_400)
    await quotas.admit(key, "req_interactive", lease_s=60)
    ttl_ms = await redis.pttl(redis_keys.quota_in_flight("alice"))
    assert ttl_ms > 86_000 * 1000
