"""GET /v1/models and /v1/models/{id}: the models this fleet serves.

That is upstream's own list where an API-key worker published one (worker/upstream_models.py;
served with upstream's fields), followed by the configured ids it does not contain
(`Settings.models`: the CLI's aliases, say); with none published, the configured ids alone.

Two clients ask for this resource and expect different shapes, so the shape is chosen by
request header: a request carrying `anthropic-version` (the anthropic SDK and Claude Code
always send it) gets the Anthropic shape, with `limit` / `before_id` / `after_id` paging
over the served order; any other request (the openai SDK, curl) gets the OpenAI shape
`{"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}`, unpaged.
An unknown id is a 404 not_found_error in both cases.

Ids are passed to the claude CLI as they are, so the CLI's aliases (`sonnet`, `opus`,
`haiku`, `fable`: its newest model of that family) are listed too. Release dates are known only for
the ids below or a `-YYYYMMDD` suffix; otherwise `created_at` is the epoch, as the
Anthropic API does for an unknown release date.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from api.services import FrontEndServices, Services
from shared.broker import redis_keys
from shared.broker.outage import outlasting_outage
from shared.errors import InvalidRequest, NotFound

logger = logging.getLogger(__name__)

router = APIRouter()

RELEASE_DATES = {
    "claude-opus-5-5": date(2026, 9, 22),
    "claude-sonnet-5-5": date(2026, 9, 28),
    "claude-haiku-5-5": date(2026, 10, 7),
    "claude-fable-5-2": date(2026, 11, 9),
}
ALIAS_NAMES = {
    "sonnet": "Sonnet (newest, Claude Code alias)",
    "opus": "Opus (newest, Claude Code alias)",
    "haiku": "Haiku (newest, Claude Code alias)",
    "fable": "Fable (newest, Claude Code alias)",
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DATE_SUFFIX = re.compile(r"-(\d{8})$")


@dataclass(frozen=True)
class ModelEntry:
    id: str
    display_name: str
    created_at: datetime
    upstream: dict[str, Any] = field(default_factory=dict)
    """Upstream's own object for this model, served as it is (empty for configured ids)."""

    @classmethod
    def for_id(cls, model_id: str) -> ModelEntry:
        return cls(model_id, display_name(model_id), release_time(model_id))

    @classmethod
    def from_upstream(cls, model: dict[str, Any]) -> ModelEntry:
        model_id = str(model["id"])
        try:
            created = datetime.fromisoformat(str(model["created_at"]))
        except (KeyError, ValueError):
            created = release_time(model_id)
        name = model.get("display_name")
        return cls(
            model_id, name if isinstance(name, str) else display_name(model_id), created, model
        )

    def anthropic_shape(self) -> dict[str, Any]:
        created = self.created_at.isoformat().replace("+00:00", "Z")
        own = {
            "type": "model",
            "id": self.id,
            "display_name": self.display_name,
            "created_at": created,
            "lifecycle": "active",
        }
        return {**own, **self.upstream}

    def openai_shape(self) -> dict[str, Any]:
        created = int(self.created_at.timestamp())
        return {"id": self.id, "object": "model", "created": created, "owned_by": "anthropic"}


def display_name(model_id: str) -> str:
    """`claude-opus-5-5` -> `Claude Opus 5.5` (a dated suffix is left out)."""
    if model_id in ALIAS_NAMES:
        return ALIAS_NAMES[model_id]
    words: list[str] = []
    for part in _DATE_SUFFIX.sub("", model_id).split("-"):
        if part.isdigit() and words and words[-1][-1].isdigit():
            words[-1] += "." + part
        else:
            words.append(part.capitalize() if part.isalpha() else part)
    return " ".join(words)


def release_time(model_id: str) -> datetime:
    suffix = _DATE_SUFFIX.search(model_id)
    try:
        day = RELEASE_DATES.get(model_id) or (
            datetime.strptime(suffix.group(1), "%Y%m%d").date() if suffix else None
        )
    except ValueError:  # eight digits that are not a date
        day = None
    return datetime(day.year, day.month, day.day, tzinfo=UTC) if day else EPOCH


def page(
    ids: list[str], *, limit: int, before_id: str | None, after_id: str | None
) -> tuple[list[str], bool]:
    """One page of `ids` in the Anthropic API's cursor style, and whether more lie beyond it."""
    if before_id and after_id:
        raise InvalidRequest("before_id and after_id cannot be used together.")
    for name, cursor in (("before_id", before_id), ("after_id", after_id)):
        if cursor and cursor not in ids:
            raise InvalidRequest(f"{name}: unknown model id {cursor!r}.")
    if before_id:
        end = ids.index(before_id)
        start = max(0, end - limit)
        return ids[start:end], start > 0
    start = ids.index(after_id) + 1 if after_id else 0
    return ids[start : start + limit], start + limit < len(ids)


def wants_anthropic_shape(request: Request) -> bool:
    return "anthropic-version" in request.headers


async def served_models(services: FrontEndServices) -> list[ModelEntry]:
    """Upstream's published list, then the configured ids it lacks."""
    entries = [ModelEntry.from_upstream(m) for m in await _published_models(services)]
    listed = {e.id for e in entries}
    configured = [i for i in dict.fromkeys(services.settings.api.models) if i not in listed]
    return entries + [ModelEntry.for_id(i) for i in configured]


async def _published_models(services: FrontEndServices) -> list[dict[str, Any]]:
    # A client listing models in a Redis restart waits it out, as its requests do.
    raw: bytes | None = await outlasting_outage(
        lambda: services.redis.get(redis_keys.upstream_models()),
        limit_s=services.settings.redis.outage_grace_s,
    )
    if raw is None:
        return []
    try:
        models = json.loads(raw)["models"]
    except (ValueError, KeyError, TypeError):
        logger.warning("ignoring an unreadable upstream model list in Redis")
        return []
    return [m for m in models if isinstance(m, dict) and isinstance(m.get("id"), str)]


@router.get("/v1/models")
async def list_models(
    request: Request,
    services: Services,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    before_id: str | None = None,
    after_id: str | None = None,
) -> dict[str, Any]:
    entries = {e.id: e for e in await served_models(services)}
    # The cursors are checked in both shapes: OpenAI's list has no pages, yet a request the
    # document calls malformed must not pass there either.
    selected, has_more = page(list(entries), limit=limit, before_id=before_id, after_id=after_id)
    if not wants_anthropic_shape(request):
        return {"object": "list", "data": [e.openai_shape() for e in entries.values()]}
    return {
        "data": [entries[i].anthropic_shape() for i in selected],
        "has_more": has_more,
        "first_id": selected[0] if selected else None,
        "last_id": selected[-1] if selected else None,
    }


@router.get("/v1/models/{model_id}")
async def retrieve_model(model_id: str, request: Request, services: Services) -> dict[str, Any]:
    entry = next((e for e in await served_models(services) if e.id == model_id), None)
    if entry is None:
        raise NotFound(f"model: {model_id}")
    return entry.anthropic_shape() if wants_anthropic_shape(request) else entry.openai_shape()
