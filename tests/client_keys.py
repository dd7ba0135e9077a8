"""Client keys for tests: made and revoked as `ccfleet keys` does, without a process for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic import SecretStr
from redis.asyncio import Redis

from shared.access.client_keys import KeyLimits, KeyStore


@asynccontextmanager
async def key_store(redis_url: str, server_secret: str) -> AsyncIterator[KeyStore]:
    client = Redis.from_url(redis_url)
    try:
        yield KeyStore(client, SecretStr(server_secret))
    finally:
        await client.aclose()


async def create_key(redis_url: str, server_secret: str, name: str, **limits: Any) -> str:
    """A new key's secret (`ccfleet keys create NAME --rpm ...`)."""
    async with key_store(redis_url, server_secret) as store:
        _, secret = await store.create(name, KeyLimits(**limits))
    return secret


async def revoke_key(redis_url: str, server_secret: str, name: str) -> None:
    """`ccfleet keys revoke NAME`."""
    async with key_store(redis_url, server_secret) as store:
        await store.revoke(name)
