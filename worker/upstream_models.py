"""Upstream's model list, published to Redis for `GET /v1/models` by workers that can read it.

An API-key account can list the models it may use: `GET /v1/models` on the upstream its CLI
talks to (`ANTHROPIC_BASE_URL`, else the Anthropic API), with the key in `x-api-key`. A worker
of such an account fetches the list at start and every `CCFLEET_MODELS_REFRESH_S`, and writes
it to `redis_keys.upstream_models()` with a TTL of three refresh periods, so a list nobody refreshes
any more expires. Front ends serve it (api/routes/models.py); while none is published they
serve `CCFLEET_MODELS`. Subscription (OAuth) workers publish nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.broker import redis_keys
from worker.cli.command import uses_api_key

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
_MAX_PAGES = 10


class ModelListUnavailable(Exception):
    """Upstream did not give a model list (network, HTTP status or body)."""


def can_list_models(env: Mapping[str, str]) -> bool:
    """Only API keys: the models endpoint is part of the API an API key may call."""
    return uses_api_key(env)


async def fetch_models(
    env: Mapping[str, str], *, timeout_s: float, page_limit: int = 1000
) -> list[dict[str, Any]]:
    """Every model upstream lists for this account, in its order (follows `has_more`)."""
    base_url = (env.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    headers = {"x-api-key": env["ANTHROPIC_API_KEY"], "anthropic-version": ANTHROPIC_VERSION}
    models: list[dict[str, Any]] = []
    params = {"limit": str(page_limit)}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout_s) as client:
        for _ in range(_MAX_PAGES):
            page = await _get_page(client, params)
            models += [
                m for m in page["data"] if isinstance(m, dict) and isinstance(m.get("id"), str)
            ]
            last_id = page.get("last_id")
            if not page.get("has_more") or not isinstance(last_id, str):
                break
            params["after_id"] = last_id
    return models


async def _get_page(client: httpx.AsyncClient, params: dict[str, str]) -> dict[str, Any]:
    try:
        response = await client.get("/v1/models", params=params)
        response.raise_for_status()
        page = response.json()
    except httpx.HTTPStatusError as exc:
        raise ModelListUnavailable(f"HTTP {exc.response.status_code}") from exc
    except (httpx.HTTPError, ValueError) as exc:
        raise ModelListUnavailable(type(exc).__name__) from exc
    if not isinstance(page, dict) or not isinstance(page.get("data"), list):
        raise ModelListUnavailable("the reply has no data list")
    return page


async def publish_models(redis: Redis, models: list[dict[str, Any]], *, ttl_s: float) -> None:
    record = {"fetched_at_ms": int(time.time() * 1000), "models": models}
    await redis.set(redis_keys.upstream_models(), json.dumps(record), px=int(ttl_s * 1000))


async def refresh_models(
    redis: Redis, env: Mapping[str, str], *, ttl_s: float, timeout_s: float = 10.0
) -> bool:
    """One round: read upstream's list and publish it. A failure is logged, and the list
    published before stays until its TTL."""
    try:
        models = await fetch_models(env, timeout_s=timeout_s)
        await publish_models(redis, models, ttl_s=ttl_s)
    except ModelListUnavailable as exc:
        logger.warning("upstream's model list unavailable: %s", exc)
        return False
    except (RedisError, OSError) as exc:
        logger.warning("model list not published: %s", type(exc).__name__)
        return False
    logger.info("published upstream's model list (%d models)", len(models))
    return True


async def publish_models_forever(redis: Redis, env: Mapping[str, str], *, refresh_s: float) -> None:
    """Owned by the worker's start-up/shut-down hooks."""
    while True:
        await refresh_models(redis, env, ttl_s=3 * refresh_s)
        await asyncio.sleep(refresh_s)
