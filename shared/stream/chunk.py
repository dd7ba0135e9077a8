"""The chunk: one numbered piece of a job's output, as workers publish it and relays read it."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel


class Chunk(BaseModel):
    """One numbered piece of a job's output.

    kind "event": `event` is the Anthropic SSE event name and `data` its JSON object.
    kind "error": `data` is the inner Anthropic error object ({"type", "message"}); it ends the job.
    """

    seq: int
    kind: Literal["event", "error"]
    event: str | None = None
    data: dict[str, Any]
    retry_after_s: float | None = None
    should_retry: bool | None = None

    @property
    def is_terminal(self) -> bool:
        return self.kind == "error" or self.event == "message_stop"

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(exclude_none=True))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Chunk:
        return cls.model_validate(orjson.loads(raw))
