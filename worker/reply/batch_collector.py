"""The answer to a batch request, gathered in memory instead of streamed.

A batch request has no client waiting on a stream, so its chunks are not journaled or
published: they are kept here and become the request's result (a whole Message, or the
error) when the answer ends. A re-run therefore starts clean.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from shared.batches import wire
from shared.stream.chunk import Chunk
from shared.wire.message_builder import MessageBuilder
from worker.reply.chunk_publisher import ChunkPublisher


class BatchCollector(ChunkPublisher):
    def __init__(self, redis: Redis, job_id: str) -> None:
        # Writes nothing to Redis, so no attempt to fence its writes on.
        super().__init__(redis, job_id, attempt=0, ttl_s=60, max_chunks=0)
        self._builder = MessageBuilder()
        self._error: dict[str, Any] | None = None

    async def last_published(self) -> Chunk | None:
        return None  # nothing is journaled: a re-run answers afresh

    async def _publish(self, chunks: list[Chunk]) -> None:
        for chunk in chunks:
            if chunk.kind == "error":
                self._error = chunk.data
            else:
                self._builder.apply(chunk.data)
            self.seq = chunk.seq
            self.ended = chunk.is_terminal

    def result(self, request_id: str) -> dict[str, Any]:
        """The batch result of what was gathered: `succeeded` with the Message, or `errored`."""
        if self._error is not None:
            return wire.errored(self._error, request_id)
        if not self.ended:
            error = {"type": "api_error", "message": "The request ended without an answer."}
            return wire.errored(error, request_id)
        return wire.succeeded(self._builder.message)
