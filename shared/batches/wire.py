"""Message batches as the Anthropic API shows them: the batch object and its result lines.

A batch's state lives in one Redis hash (`redis_keys.batch`, written by shared/batches/store.py);
`BatchState` reads it and `to_api` renders the `message_batch` object of the API. Counts
are kept per result type; `processing` is what is left, so the five always sum to the
number of requests.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

BatchStatus = Literal["in_progress", "canceling", "ended"]
ResultType = Literal["succeeded", "errored", "canceled", "expired"]
RESULT_TYPES: tuple[ResultType, ...] = ("succeeded", "errored", "canceled", "expired")

MAX_REQUESTS = 100_000
CUSTOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # with fullmatch: `$` would take "a\n"
BATCH_ID = re.compile(r"msgbatch_[0-9a-f]{28}")  # new_batch_id; use with fullmatch


def new_batch_id() -> str:
    """Ids sort by creation time (batches created in the same millisecond list in order)."""
    return f"msgbatch_{time.time_ns():016x}{secrets.token_hex(6)}"


def rfc3339(epoch_ms: int | None) -> str | None:
    if not epoch_ms:
        return None
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class BatchState:
    """The fields of a batch's hash (times in epoch ms; 0: not yet)."""

    id: str
    owner: str  # the client key's name, for its usage and spend; "" when auth is off
    owner_id: str  # the client key's id, who may see the batch; "" when auth is off
    status: BatchStatus
    count: int
    counts: dict[ResultType, int]
    created_at_ms: int
    expires_at_ms: int
    ended_at_ms: int
    cancel_initiated_at_ms: int
    fill: str  # the result type of requests that never ran: "", canceled or expired

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes]) -> BatchState:
        text = {k.decode(): v.decode() for k, v in raw.items()}
        status: BatchStatus = "in_progress"
        if text.get("status") in ("canceling", "ended"):
            status = "ended" if text["status"] == "ended" else "canceling"
        return cls(
            id=text["id"],
            owner=text.get("owner", ""),
            owner_id=text.get("owner_id", ""),
            status=status,
            count=int(text["count"]),
            counts={kind: int(text.get(kind, 0)) for kind in RESULT_TYPES},
            created_at_ms=int(text["created_at_ms"]),
            expires_at_ms=int(text["expires_at_ms"]),
            ended_at_ms=int(text.get("ended_at_ms") or 0),
            cancel_initiated_at_ms=int(text.get("cancel_initiated_at_ms") or 0),
            fill=text.get("fill", ""),
        )

    @property
    def processing(self) -> int:
        return self.count - sum(self.counts.values())

    def to_api(self, base_url: str) -> dict[str, Any]:
        """The `message_batch` object of the Message Batches API; `base_url` is this
        service's, as clients reach it (no trailing slash)."""
        results_url = None
        if self.status == "ended":
            results_url = f"{base_url}/v1/messages/batches/{self.id}/results"
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.status,
            "request_counts": {"processing": self.processing, **self.counts},
            "created_at": rfc3339(self.created_at_ms),
            "expires_at": rfc3339(self.expires_at_ms),
            "ended_at": rfc3339(self.ended_at_ms),
            "cancel_initiated_at": rfc3339(self.cancel_initiated_at_ms),
            "archived_at": None,
            "results_url": results_url,
        }


def result_line(custom_id: str, result: dict[str, Any]) -> bytes:
    """One line of a batch's results (JSONL, without the newline)."""
    return orjson.dumps({"custom_id": custom_id, "result": result})


def succeeded(message: dict[str, Any]) -> dict[str, Any]:
    return {"type": "succeeded", "message": message}


def errored(error: dict[str, Any], request_id: str | None = None) -> dict[str, Any]:
    """`error` is the inner error object ({"type", "message"}), as FleetError.to_error gives."""
    return {
        "type": "errored",
        "error": {"type": "error", "error": error, "request_id": request_id},
    }


def never_ran(kind: str) -> dict[str, Any]:
    """The result of a request the batch canceled or that expired before it ran."""
    return {"type": kind}
