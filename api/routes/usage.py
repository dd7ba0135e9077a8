"""GET /v1/usage: the ledger (shared/access/ledger.py), for admin keys when auth is on.

`?by=key|account|model` (default key) and `?since=YYYY-MM-DD` (default the first day of this
month, UTC); the same rows as `ccfleet usage --json`. A `since` older than the ledger keeps
(CCFLEET_USAGE_RETENTION_DAYS) is read from the first day it keeps, which the answer's `since`
says: the ledger is read one day at a time, so year 1 would be 739,000 Redis commands.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from api.services import Services
from shared.access.ledger import Dimension, first_day_kept, read_usage, today_utc
from shared.errors import InvalidRequest

router = APIRouter()

_DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"  # a number would be read as a timestamp


@router.get("/v1/usage")
async def usage(
    services: Services,
    by: Annotated[Dimension, Query()] = "key",
    since: Annotated[
        str | None,
        Query(
            pattern=_DATE_PATTERN,
            description="first day, YYYY-MM-DD (UTC)",
            json_schema_extra={"format": "date"},
        ),
    ] = None,
) -> dict[str, object]:
    first = _calendar_date(since) if since else today_utc().replace(day=1)
    first = max(first, first_day_kept(services.settings.access.usage_retention_days))
    rows = await read_usage(services.redis, by=by, since=first)
    return {"by": by, "since": first.isoformat(), "data": rows}


def _calendar_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRequest("since: not a calendar date (YYYY-MM-DD).") from exc
