"""arq jobs travel as JSON, never pickles; front ends and workers use the same codec."""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
from arq.connections import RedisSettings


def serialize(value: dict[str, Any]) -> bytes:
    # arq also stores job results, which for a cancelled or failed job is an exception:
    # kept as its repr (nobody reads results back as objects).
    return orjson.dumps(value, default=repr)


def deserialize(raw: bytes) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(raw)
    return value


def redis_settings(url: str) -> RedisSettings:
    """arq's settings for a Redis URL: `redis://[:PASSWORD@]HOST:PORT/DB` or `rediss://…` (TLS).

    arq's `from_dsn` reads neither percent-escapes in the credentials nor TLS options; here
    they are, as redis-py's `from_url` reads them (`?ssl_ca_certs=PATH&ssl_cert_reqs=none`).
    """
    settings = RedisSettings.from_dsn(url)
    parts = urlsplit(url)
    query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    return dataclasses.replace(
        settings,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        ssl_ca_certs=query.get("ssl_ca_certs", settings.ssl_ca_certs),
        ssl_cert_reqs=query.get("ssl_cert_reqs", settings.ssl_cert_reqs),
        ssl_certfile=query.get("ssl_certfile", settings.ssl_certfile),
        ssl_keyfile=query.get("ssl_keyfile", settings.ssl_keyfile),
    )
