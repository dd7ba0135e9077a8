"""An API-key worker reads upstream's model list (the fake upstream's GET /v1/models) and
publishes it to Redis; a failed read leaves the last published list in place."""

from __future__ import annotations

import json

import pytest
from redis.asyncio import Redis

from shared.broker import redis_keys
from tests.fakes.upstream import ErrorReply, FakeUpstream, model_object
from worker.upstream_models import (
    ModelListUnavailable,
    can_list_models,
    fetch_models,
    publish_models,
    refresh_models,
)

KEY = "sk-ant-api03-fleet-key"


def api_key_env(upstream: FakeUpstream) -> dict[str, str]:
    return {"ANTHROPIC_BASE_URL": upstream.url, "ANTHROPIC_API_KEY": KEY}


async def test_every_page_of_upstream_models_is_read_with_the_account_api_key(
    upstream: FakeUpstream,
) -> None:
    created = "2026-11-01T00:00:00Z"
    upstream.models = [model_object(f"claude-test-{i}", f"Test {i}", created) for i in range(5)]
    models = await fetch_models(api_key_env(upstream), timeout_s=10, page_limit=2)
    assert [m["id"] for m in models] == [f"claude-test-{i}" for i in range(5)]
    assert models[0] == upstream.models[0], "upstream's objects are kept as they are"
    assert [r.query.get("after_id") for r in upstream.model_list_requests] == [
        None,
        "claude-test-1",
        "claude-test-3",
    ]
    assert {r.headers["x-api-key"] for r in upstream.model_list_requests} == {KEY}
    assert {r.headers["anthropic-version"] for r in upstream.model_list_requests} == {"2023-06-01"}


async def test_an_upstream_error_is_reported_not_published(upstream: FakeUpstream) -> None:
    upstream.models_error = ErrorReply(401, "authentication_error", "invalid x-api-key")
    with pytest.raises(ModelListUnavailable, match="HTTP 401"):
        await fetch_models(api_key_env(upstream), timeout_s=10)


async def test_a_failed_refresh_leaves_the_last_published_list_in_place(
    upstream: FakeUpstream, redis: Redis
) -> None:
    earlier = [model_object("claude-opus-5-5", "Claude Opus 5.5", "2026-09-22T00:00:00Z")]
    await publish_models(redis, earlier, ttl_s=60)
    upstream.models_error = ErrorReply(529, "overloaded_error", "Overloaded")
    assert not await refresh_models(redis, api_key_env(upstream), ttl_s=3600)
    assert len(upstream.model_list_requests) == 1
    published = json.loads(await redis.get(redis_keys.upstream_models()) or b"{}")
    assert published["models"] == earlier
    assert 0 < await redis.pttl(redis_keys.upstream_models()) <= 60_000


def test_only_api_key_accounts_list_models() -> None:
    assert can_list_models({"ANTHROPIC_API_KEY": KEY})
    assert not can_list_models({"CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-x"})
    assert not can_list_models({"CLAUDE_CONFIG_DIR": "/home/w/.claude"})


async def test_a_refresh_publishes_upstream_models_for_a_few_refresh_periods(
    upstream: FakeUpstream, redis: Redis
) -> None:
    assert await refresh_models(redis, api_key_env(upstream), ttl_s=3 * 3600)
    published = json.loads(await redis.get(redis_keys.upstream_models()) or b"{}")
    assert [m["id"] for m in published["models"]] == [m["id"] for m in upstream.models]
    assert 2 * 3600_000 < await redis.pttl(redis_keys.upstream_models()) <= 3 * 3600_000
