"""Client keys: who may use the fleet, on which lanes and models, within which quotas.

A secret (`sk-ccf-…`) is shown once, when its key is created, and never stored: Redis holds
only its keyed hash, HMAC-SHA256 with the server secret (`CCFLEET_AUTH_SECRET`), as the name
of the key's record (`redis_keys.client_key`). A lookup hashes the presented secret and reads that
record: the Redis key looked up is an HMAC output, so how long the lookup takes tells an
attacker nothing about any secret; the digests are then compared in constant time.
`redis_keys.client_key_names` maps each live key's name to its digest; revoking removes the name
and marks the record revoked, so the very next lookup on any front end fails.

What a key owns (its batches, its streams) is recorded under its `id`, never its name: a name
is free again once its key is revoked, and a new key under that name owns nothing of the old
one's. The id is drawn at creation and never changes; a key stored before ids existed gets one
derived from its digest (as immutable, and distinct for each key).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from fnmatch import fnmatchcase

import orjson
from pydantic import BaseModel, Field, SecretStr, model_validator
from redis.asyncio import Redis

from shared.broker import redis_keys
from shared.broker.lua_script import LuaScript
from shared.fleet.lanes import LANES, Lane

SECRET_PREFIX = "sk-ccf-"
MIN_SERVER_SECRET_CHARS = 32
KEY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
KEY_ID_PATTERN = r"^key_[0-9a-f]{24}$"


def new_key_id() -> str:
    return "key_" + secrets.token_hex(12)


def legacy_key_id(digest: str) -> str:
    """The id of a key stored before keys had ids: stable, as its digest never changes."""
    return "key_" + hashlib.sha256(b"ccfleet key id\0" + digest.encode()).hexdigest()[:24]


class KeyStoreError(ValueError):
    """A key operation that cannot be done (name taken, unknown name, no server secret).

    Said to the operator running `ccfleet keys`, never to an API client: not a FleetError."""


class KeyLimits(BaseModel):
    """What a key may do; None: no limit. Models are shell-style patterns (`claude-sonnet-*`)."""

    admin: bool = False
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    concurrency: int | None = Field(default=None, ge=1)
    monthly_usd: float | None = Field(default=None, gt=0)
    lanes: list[Lane] = Field(default_factory=lambda: list(LANES), min_length=1)
    models: list[str] = Field(default_factory=list)


class ClientKey(KeyLimits):
    """A key's record as stored (never its secret)."""

    id: str = Field(default="", pattern=KEY_ID_PATTERN)
    """What the key's batches and streams are recorded under; never changes. Left out (a
    record stored before ids): derived from the digest."""
    name: str = Field(pattern=KEY_NAME_PATTERN)
    digest: str
    created_at: float
    revoked_at: float = 0.0

    @model_validator(mode="before")
    @classmethod
    def _id_of_a_key_stored_before_ids(cls, values: object) -> object:
        digest = values.get("digest") if isinstance(values, dict) else None
        if isinstance(values, dict) and "id" not in values and isinstance(digest, str):
            return {**values, "id": legacy_key_id(digest)}
        return values

    @property
    def revoked(self) -> bool:
        return self.revoked_at > 0

    def allows_lane(self, lane: str) -> bool:
        return lane in self.lanes

    def allows_model(self, model: str) -> bool:
        return not self.models or any(fnmatchcase(model, pattern) for pattern in self.models)

    def limits(self) -> KeyLimits:
        return KeyLimits.model_validate(self.model_dump(include=set(KeyLimits.model_fields)))


# Both change a record only while the name still points at it (no update revives a revoked key).
_REPLACE = LuaScript.beside(__file__, "client_keys.replace.lua")
_REVOKE = LuaScript.beside(__file__, "client_keys.revoke.lua")


class KeyStore:
    def __init__(self, redis: Redis, server_secret: SecretStr) -> None:
        raw = server_secret.get_secret_value()
        if len(raw) < MIN_SERVER_SECRET_CHARS:
            raise KeyStoreError(
                f"CCFLEET_AUTH_SECRET must be at least {MIN_SERVER_SECRET_CHARS} characters "
                "(e.g. `openssl rand -hex 32`); every front end and `ccfleet keys` need the same."
            )
        self._redis = redis
        self._server_secret = raw.encode()
        self._replace = _REPLACE.bind(redis)
        self._revoke = _REVOKE.bind(redis)

    def digest(self, secret: str) -> str:
        return hmac.new(self._server_secret, secret.encode(), hashlib.sha256).hexdigest()

    async def find(self, secret: str) -> ClientKey | None:
        """The live key whose secret this is, else None."""
        digest = self.digest(secret)
        raw = await self._redis.get(redis_keys.client_key(digest))
        if raw is None:
            return None
        key = ClientKey.model_validate_json(raw)
        if not hmac.compare_digest(key.digest, digest) or key.revoked:
            return None
        return key

    async def create(self, name: str, limits: KeyLimits) -> tuple[ClientKey, str]:
        """A new key and its secret, which exists nowhere else once the caller shows it."""
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        digest = self.digest(secret)
        key = ClientKey(
            id=new_key_id(),
            name=name,
            digest=digest,
            created_at=time.time(),
            **limits.model_dump(),
        )
        if not await self._redis.hsetnx(redis_keys.client_key_names(), name, digest):  # type: ignore[misc]  # redis-py 5 types it sync-or-async
            raise KeyStoreError(f"a key named {name!r} exists; revoke it first")
        await self._redis.set(redis_keys.client_key(digest), _dump(key))
        return key, secret

    async def get(self, name: str) -> ClientKey:
        key = await key_named(self._redis, name)
        if key is None:
            raise KeyStoreError(f"no key named {name!r}")
        return key

    async def list(self) -> list[ClientKey]:
        names: dict[bytes, bytes] = await self._redis.hgetall(redis_keys.client_key_names())  # type: ignore[misc]  # as above
        if not names:
            return []
        raws = await self._redis.mget([redis_keys.client_key(d.decode()) for d in names.values()])
        found = [ClientKey.model_validate_json(raw) for raw in raws if raw is not None]
        return sorted(found, key=lambda k: k.name)

    async def update(self, name: str, changes: dict[str, object]) -> ClientKey:
        """Change the given limits (`None` removes a limit), keeping the others."""
        key = await self.get(name)
        limits = KeyLimits.model_validate({**key.limits().model_dump(), **changes})
        updated = key.model_copy(update=limits.model_dump())
        if not await self._replace(
            names=redis_keys.client_key_names(),
            record=redis_keys.client_key(key.digest),
            name=name,
            digest=key.digest,
            replacement=_dump(updated),
        ):
            raise KeyStoreError(f"key {name!r} was revoked or replaced meanwhile")
        return updated

    async def revoke(self, name: str) -> ClientKey:
        key = await self.get(name)
        revoked = key.model_copy(update={"revoked_at": time.time()})
        if not await self._revoke(
            names=redis_keys.client_key_names(),
            record=redis_keys.client_key(key.digest),
            name=name,
            digest=key.digest,
            revoked=_dump(revoked),
        ):
            raise KeyStoreError(f"key {name!r} was revoked or replaced meanwhile")
        return revoked


async def key_named(redis: Redis, name: str) -> ClientKey | None:
    """The record of the key named `name`, revoked or not; None if there is none. Needs no
    server secret: a worker reads the key a batch was created with to admit its requests."""
    digest = await redis.hget(redis_keys.client_key_names(), name)  # type: ignore[misc]  # redis-py 5 types it sync-or-async
    raw = await redis.get(redis_keys.client_key(digest.decode())) if digest else None
    return ClientKey.model_validate_json(raw) if raw is not None else None


def _dump(key: ClientKey) -> bytes:
    return orjson.dumps(key.model_dump())
