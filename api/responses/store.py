"""Stored responses: a response, the request that made it and its input, kept in Redis.

One JSON value per response (`redis_keys.stored_response`) for `CCFLEET_RESPONSES_TTL_S`:
`owner` (the client key's id, "" with auth off), `request` (the body as sent, for a background
response still running), `history` (the conversation before this request's input, the earlier
responses' output included), `input` (this request's items, each with an id) and `response`.
A `previous_response_id` continues from `history + input + response.output`: one read, however
long the chain. A response owned by another key is as unknown as one that never was (404).
Each input and output item's id names its response within its owner (`redis_keys.stored_item`,
as long as the response is kept), so an `item_reference` input item is found in one more read.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import TypeAdapter
from redis.asyncio import Redis

from api.responses.request import InputItem, ItemReference
from shared.broker import redis_keys
from shared.errors import NotFound

Json = dict[str, Any]

_ITEMS: TypeAdapter[list[InputItem]] = TypeAdapter(list[InputItem])
_ITEM: TypeAdapter[InputItem] = TypeAdapter(InputItem)
_ID_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
    "custom_tool_call": "ctc",
    "custom_tool_call_output": "ctco",
}


def dumped_items(items: list[InputItem]) -> list[Json]:
    """Input items as JSON, each with an id (as `input_items` lists them)."""
    dumped = [item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in items]
    for item in dumped:
        item.setdefault("type", "message")
        item.setdefault("id", f"{_ID_PREFIXES[item['type']]}_{secrets.token_hex(16)}")
    return dumped


def _item_key(owner: str, item_id: str) -> str:
    """Per owner, as clients choose their input items' ids (one key's cannot shadow another's);
    a digest, as they choose them of any length."""
    named = orjson.dumps([owner, item_id])
    return redis_keys.stored_item(hashlib.sha256(named).hexdigest()[:32])


@dataclass
class StoredResponse:
    response: Json
    owner: str
    request: Json = field(default_factory=dict)
    history: list[Json] = field(default_factory=list)
    input: list[Json] = field(default_factory=list)
    job_id: str = ""  # a background response's job
    lease: dict[str, Any] | None = None  # its quota lease (shared/access/quotas.py), if any

    @property
    def id(self) -> str:
        return str(self.response["id"])

    def conversation(self) -> list[InputItem]:
        """What a response continuing from this one starts from."""
        return _ITEMS.validate_python(
            [*self.history, *self.input, *self.response["output"]], strict=False
        )


class ResponseStore:
    def __init__(self, redis: Redis, *, ttl_s: int) -> None:
        self._redis = redis
        self._ttl_s = ttl_s

    async def save(self, stored: StoredResponse) -> None:
        record = {
            "response": stored.response,
            "owner": stored.owner,
            "request": stored.request,
            "history": stored.history,
            "input": stored.input,
            "job_id": stored.job_id,
            "lease": stored.lease,
        }
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(redis_keys.stored_response(stored.id), orjson.dumps(record), ex=self._ttl_s)
            for item in [*stored.input, *stored.response.get("output", [])]:
                pipe.set(_item_key(stored.owner, item["id"]), stored.id, ex=self._ttl_s)
            await pipe.execute()

    async def resolved(self, items: list[InputItem], owner: str) -> list[InputItem]:
        """`items` with each `item_reference` replaced by the stored item it names (404 for
        an item of a response `owner` does not own, or no longer kept)."""
        if not any(isinstance(item, ItemReference) for item in items):
            return items
        return [
            await self._item(item.id, owner) if isinstance(item, ItemReference) else item
            for item in items
        ]

    async def _item(self, item_id: str, owner: str) -> InputItem:
        missing = NotFound(f"No item with id '{item_id}' (it may have expired).")
        raw = await self._redis.get(_item_key(owner, item_id))
        if raw is None:
            raise missing
        try:
            stored = await self.load(raw.decode(), owner)
        except NotFound as error:
            raise missing from error
        for item in [*stored.input, *stored.response.get("output", [])]:
            if item["id"] == item_id:
                return _ITEM.validate_python(item, strict=False)
        raise missing

    async def load(self, response_id: str, owner: str) -> StoredResponse:
        raw = await self._redis.get(redis_keys.stored_response(response_id))
        record = orjson.loads(raw) if raw is not None else None
        if record is None or record["owner"] != owner:
            raise NotFound(f"No response with id '{response_id}' (it may have expired).")
        return StoredResponse(**record)

    async def delete(self, response_id: str, owner: str) -> None:
        await self.load(response_id, owner)  # another key's is not found either
        await self._redis.delete(redis_keys.stored_response(response_id))
