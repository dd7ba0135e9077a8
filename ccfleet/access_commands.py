"""`ccfleet keys create|list|update|revoke` and `ccfleet usage`: client keys and the ledger.

Like `ccfleet status`, they talk to Redis (CCFLEET_REDIS_URL) directly. `keys create` prints
the new secret once, alone on the last line of stdout; nothing else ever shows it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError
from rich.console import Console
from rich.table import Table

from shared.access.client_keys import ClientKey, KeyLimits, KeyStore, KeyStoreError
from shared.access.ledger import COUNTERS, Dimension, first_day_kept, read_usage, today_utc
from shared.broker.connection import redis_client
from shared.settings import Settings

keys_app = typer.Typer(no_args_is_help=True, help="Client keys: who may use the fleet.")

_REDIS_TIMEOUT_S = 3.0
T = TypeVar("T")

Rpm = Annotated[int | None, typer.Option(min=0, help="Requests per minute (0: no limit).")]
Tpm = Annotated[
    int | None, typer.Option(min=0, help="Input + output tokens per minute (0: no limit).")
]
Concurrency = Annotated[int | None, typer.Option(min=0, help="Requests at once (0: no limit).")]
MonthlyUsd = Annotated[
    float | None, typer.Option("--monthly-usd", min=0, help="USD per month (0: no limit).")
]
Lanes = Annotated[
    str | None, typer.Option(help="Lanes it may use, comma-separated: interactive,batch.")
]
Models = Annotated[
    str | None, typer.Option(help="Model patterns it may use, comma-separated (claude-*).")
]


def _run(work: Callable[[Redis], Awaitable[T]]) -> T:
    """Run `work` against Redis; an unusable request or an unreachable Redis ends the command."""
    settings = Settings()

    async def main() -> T:
        redis = redis_client(settings, timeout_s=_REDIS_TIMEOUT_S)
        try:
            return await work(redis)
        finally:
            await redis.aclose()

    try:
        return asyncio.run(main())
    except (KeyStoreError, ValidationError) as exc:
        typer.echo(f"ccfleet: {_problem(exc)}", err=True)
        raise typer.Exit(2) from exc
    except (RedisError, OSError) as exc:
        typer.echo(f"ccfleet: cannot reach Redis: {type(exc).__name__}", err=True)
        raise typer.Exit(1) from exc


def _store(redis: Redis) -> KeyStore:
    return KeyStore(redis, Settings().access.auth_secret)


def _problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return str(exc)


def _changes(
    rpm: int | None,
    tpm: int | None,
    concurrency: int | None,
    monthly_usd: float | None,
    lanes: str | None,
    models: str | None,
    admin: bool | None,
) -> dict[str, object]:
    """The options given; 0 removes a limit."""
    changes: dict[str, object] = {}
    for field, value in (("rpm", rpm), ("tpm", tpm), ("concurrency", concurrency)):
        if value is not None:
            changes[field] = value or None
    if monthly_usd is not None:
        changes["monthly_usd"] = monthly_usd or None
    if lanes is not None:
        changes["lanes"] = [lane.strip() for lane in lanes.split(",") if lane.strip()]
    if models is not None:
        changes["models"] = [m.strip() for m in models.split(",") if m.strip()]
    if admin is not None:
        changes["admin"] = admin
    return changes


def _shown(key: ClientKey) -> dict[str, Any]:
    return key.model_dump(exclude={"digest"})


@keys_app.command()
def create(
    name: Annotated[str, typer.Argument(help="The key's name, shown in usage and metrics.")],
    rpm: Rpm = None,
    tpm: Tpm = None,
    concurrency: Concurrency = None,
    monthly_usd: MonthlyUsd = None,
    lanes: Lanes = None,
    models: Models = None,
    admin: Annotated[bool, typer.Option(help="May read /v1/fleet and /v1/usage.")] = False,
) -> None:
    """Create a key; its secret is the last line printed, and is shown only this once."""

    async def work(redis: Redis) -> tuple[ClientKey, str]:
        limits = KeyLimits.model_validate(
            _changes(rpm, tpm, concurrency, monthly_usd, lanes, models, admin)
        )
        return await _store(redis).create(name, limits)

    key, secret = _run(work)
    typer.echo(f"created key {key.name}: {json.dumps(key.limits().model_dump())}")
    typer.echo("its secret, shown only now:")
    typer.echo(secret)


@keys_app.command("list")
def list_keys(
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list.")] = False,
) -> None:
    """The live keys and their limits (never a secret)."""

    async def work(redis: Redis) -> list[ClientKey]:
        return await _store(redis).list()

    found = _run(work)
    if as_json:
        typer.echo(json.dumps([_shown(k) for k in found], indent=2))
        return
    table = Table(title="Client keys", title_justify="left")
    for column in ("name", "admin", "rpm", "tpm", "concurrency", "monthly $", "lanes", "models"):
        table.add_column(column)
    for k in found:
        table.add_row(
            k.name,
            "yes" if k.admin else "",
            *(str(v) if v is not None else "-" for v in (k.rpm, k.tpm, k.concurrency)),
            f"{k.monthly_usd:.2f}" if k.monthly_usd is not None else "-",
            ",".join(k.lanes),
            ",".join(k.models) or "any",
        )
    Console().print(table)


@keys_app.command()
def update(
    name: str,
    rpm: Rpm = None,
    tpm: Tpm = None,
    concurrency: Concurrency = None,
    monthly_usd: MonthlyUsd = None,
    lanes: Lanes = None,
    models: Models = None,
    admin: Annotated[bool | None, typer.Option("--admin/--no-admin")] = None,
) -> None:
    """Change the limits given; the others stay. Takes effect with the next request."""
    changes = _changes(rpm, tpm, concurrency, monthly_usd, lanes, models, admin)

    async def work(redis: Redis) -> ClientKey:
        return await _store(redis).update(name, changes)

    typer.echo(json.dumps(_shown(_run(work))))


@keys_app.command()
def revoke(name: str) -> None:
    """Revoke a key: every front end refuses it from its next request on."""

    async def work(redis: Redis) -> ClientKey:
        return await _store(redis).revoke(name)

    typer.echo(f"revoked key {_run(work).name}")


def usage(
    by: Annotated[Dimension, typer.Option(help="Rows per key, account or model.")] = "key",
    since: Annotated[
        str | None, typer.Option(help="First day, YYYY-MM-DD (default: this month's first).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list of rows.")] = False,
) -> None:
    """The ledger: requests, errors, tokens and cost per key, account or model."""
    try:
        first = date.fromisoformat(since) if since else today_utc().replace(day=1)
    except ValueError as exc:
        typer.echo("ccfleet usage: --since must be YYYY-MM-DD", err=True)
        raise typer.Exit(2) from exc
    first = max(first, first_day_kept(Settings().access.usage_retention_days))

    async def work(redis: Redis) -> list[dict[str, object]]:
        return await read_usage(redis, by=by, since=first)

    rows = _run(work)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"Usage by {by} since {first.isoformat()}", title_justify="left")
    for column in (by, *COUNTERS, "cost_usd"):
        table.add_column(column, justify="left" if column == by else "right")
    for row in rows:
        table.add_row(*(str(row[c]) for c in (by, *COUNTERS)), f"{row['cost_usd']:.4f}")
    Console().print(table)
