"""Which account a conversation's turns should go to: the upstream prompt cache is per account.

The turns of one conversation share their system prompt and first message, so those name it,
unless its client names it: a Responses request's `prompt_cache_key` (Codex sends one per
session) is the conversation, scoped by the client key (`named_conversation`), and travels on
the job (`JobRequest.conversation`), never upstream.
The worker answering a turn records its account under that key with the turn's first chunk
(`AccountNote`, worker/reply/chunk_publisher.py), long before the client can send the next; the
front end asks for that account for the next turn (`conversation_notes`) while it has room
(shared/fleet/account_policy.py). A preference is only a head start for that account's workers
(`CCFLEET_AFFINITY_WAIT_MS`): any worker may take the turn after it, so a busy or cooling
account never strands a conversation.

Within the account, the worker whose resident CLI may hold the conversation (worker/cli/resident.py)
goes first: a worker with resident CLIs notes itself with the turn's first chunk too
(`AccountNote.worker`), and the front end names it for the next turn if it is ready and has
room (`preferred_worker`), with the same head start. Busy, cooling, draining or gone: no
preference, and whichever worker takes the turn replays its history.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import cached_property

import orjson
from redis.asyncio import Redis

from shared.broker import redis_keys
from shared.fleet.registry import FleetSnapshot, WorkerInfo
from shared.wire.messages import MessagesRequest

logger = logging.getLogger(__name__)


def named_conversation(client_key_id: str, name: str) -> str:
    """The conversation a client named `name` (a `prompt_cache_key`): within its client key,
    so two keys' names never share an account's cache; '' when it named none."""
    if not name:
        return ""
    scoped = orjson.dumps(["named", client_key_id, name])
    return hashlib.sha256(scoped).hexdigest()[:32]


def conversation_key(request: MessagesRequest, named: str = "") -> str:
    """The key a conversation's turns share: the one its client named, else its system
    prompt and first message."""
    if named:
        return named
    first = request.messages[0].model_dump(mode="json", exclude_unset=True)
    opening = orjson.dumps([request.system_text() or "", first], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(opening).hexdigest()[:32]


@dataclass(frozen=True)
class AccountNote:
    """`account` serves `request`'s conversation for `ttl_s` from now."""

    request: MessagesRequest
    account: str
    ttl_s: int
    named: str = ""  # the conversation its client named, if it did
    worker: str = ""
    """The worker answering, if it may keep the conversation resident ('': none)."""
    worker_ttl_s: int = 1
    """How long its resident CLI waits for the next turn."""

    @cached_property
    def conversation(self) -> str:
        """Worked out when first needed: after the CLI has the request."""
        return conversation_key(self.request, self.named)

    @property
    def key(self) -> str:
        return redis_keys.conversation_account(self.conversation)

    @property
    def worker_key(self) -> str:
        """The key noting the worker, or '' when there is none to note."""
        return redis_keys.conversation_worker(self.conversation) if self.worker else ""


@dataclass(frozen=True)
class ConversationNotes:
    """What the workers that answered a conversation noted for its next turn."""

    account: str
    """The account that served its latest turn, or ''."""
    worker: str
    """The worker that may hold it in a resident CLI, or ''."""


async def conversation_notes(redis: Redis, conversation: str) -> ConversationNotes:
    """Both notes in one read: the front end reads them before queueing each turn."""
    account, worker = await redis.mget(
        [
            redis_keys.conversation_account(conversation),
            redis_keys.conversation_worker(conversation),
        ]
    )
    return ConversationNotes(
        account=account.decode() if account is not None else "",
        worker=worker.decode() if worker is not None else "",
    )


def preferred_worker(noted_worker: str, fleet: FleetSnapshot, account: str) -> str:
    """The worker of `account` that may hold the conversation (`noted_worker`), if it can take
    the turn now."""
    if not account or not noted_worker:
        return ""
    holder = next((worker for worker in fleet.workers if worker.id == noted_worker), None)
    reason = _why_not_named(holder, account)
    if reason:
        # A follow-up that will replay: why (docs/benchmarks.md "Why a few follow-ups miss").
        logger.info("the conversation's worker %s is not named: %s", noted_worker, reason)
        return ""
    return noted_worker


def _why_not_named(holder: WorkerInfo | None, account: str) -> str:
    if holder is None:
        return "gone"
    if holder.account != account:
        return f"of account {holder.account}, not {account}"
    if holder.state != "ready":
        return holder.state
    if holder.busy >= holder.slots:
        return f"{holder.busy} of {holder.slots} slots busy at its last heartbeat"
    return ""
