"""GET /v1/usage: the ledger (shared/access/ledger.py), for admin keys when auth is on.

`?by=key|account|model` (default key) and `?since=YYYY-MM-DD` (default the first day of this
month, UTC); the same rows as `ccfleet usage --json`.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from api.services import Services
from shared.access.ledger import Dimension, read_usage, today_utc

router = APIRouter()


@router.get("/v1/usage")
async def usage(
    services: Services,
    by: Annotated[Dimension, Query()] = "key",
    since: Annotated[date | None, Query()] = None,
) -> dict[str, object]:
    first = since or today_utc().replace(day=1)
    rows = await read_usage(services.redis, by=by, since=first)
    return {"by": by, "since": first.isoformat(), "data": rows}
