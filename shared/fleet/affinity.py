"""Which account a conversation's turns should go to: the upstream prompt cache is per account.

The turns of one conversation share their system prompt and first message, so those name it.
The worker answering a turn records its account under that key with the turn's first chunk
(`AccountNote`, worker/reply/chunk_publisher.py), long before the client can send the next; the
front end asks for that account for the next turn (`noted_account`) while it has room
(shared/fleet/account_policy.py). A preference is only a head start for that account's workers
(`CCFLEET_AFFINITY_WAIT_MS`): any worker may take the turn after it, so a busy or cooling
account never strands a conversation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import orjson
from redis.asyncio import Redis

from shared.broker import redis_keys
from shared.wire.messages import MessagesRequest


def conversation_key(request: MessagesRequest) -> str:
    first = request.messages[0].model_dump(mode="json", exclude_unset=True)
    named = orjson.dumps([request.system_text() or "", first], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(named).hexdigest()[:32]


@dataclass(frozen=True)
class AccountNote:
    """`account` serves `request`'s conversation for `ttl_s` from now."""

    request: MessagesRequest
    account: str
    ttl_s: int

    @cached_property
    def key(self) -> str:
        """The Redis key, worked out when first needed: after the CLI has the request."""
        return redis_keys.conversation_account(conversation_key(self.request))


async def noted_account(redis: Redis, request: MessagesRequest) -> str:
    """The account that served the conversation's latest turn, or ''."""
    raw: bytes | None = await redis.get(redis_keys.conversation_account(conversation_key(request)))
    return raw.decode() if raw is not None else ""
