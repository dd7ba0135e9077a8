"""Turns a job's chunks into what the client gets: an SSE stream or one Message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from sse_starlette import ServerSentEvent

from api.errors import error_event
from api.job_queue import JobQueue
from api.job_reader import JobReader
from api.message_builder import MessageBuilder
from shared.errors import CliFailed, FleetError, from_error
from shared.jobs import Chunk


class JobRelay:
    """Relays one job to one client: `open` subscribes, `close` ends (and cancels if unfinished)."""

    def __init__(self, reader: JobReader, queue: JobQueue, *, check_interval_s: float) -> None:
        self.reader = reader
        self._queue = queue
        self._check_interval_s = check_interval_s
        self.finished = False

    @classmethod
    async def open(cls, reader: JobReader, queue: JobQueue, *, check_interval_s: float) -> JobRelay:
        await reader.__aenter__()
        return cls(reader, queue, check_interval_s=check_interval_s)

    async def close(self) -> None:
        try:
            if not self.finished:
                await self._queue.cancel(self.reader.job_id)
        finally:
            await self.reader.__aexit__(None, None, None)

    async def next_chunk(self) -> Chunk:
        """The next chunk, waiting as long as the job lives; an error chunk raises."""
        while True:
            chunk = await self.reader.next_chunk(self._check_interval_s)
            if chunk is None and await self._queue.has_ended(self.reader.job_id):
                chunk = await self.reader.next_chunk(0)
                if chunk is None:
                    raise CliFailed("The worker ended the request without an answer.")
            if chunk is None:
                continue
            self.finished = chunk.is_terminal
            if chunk.kind == "error":
                raise from_error(chunk.data, retry_after_s=chunk.retry_after_s)
            return chunk

    async def gather_message(self) -> dict[str, Any]:
        builder = MessageBuilder()
        while not self.finished:
            builder.apply((await self.next_chunk()).data)
        return builder.message

    async def sse_events(self, first: Chunk) -> AsyncIterator[ServerSentEvent]:
        """The stream after its first chunk; a later error becomes `event: error`."""
        chunk = first
        while True:
            yield to_sse(chunk, self.reader.job_id)
            if self.finished:
                return
            try:
                chunk = await self.next_chunk()
            except FleetError as error:
                yield error_event(error)
                return


def to_sse(chunk: Chunk, job_id: str) -> ServerSentEvent:
    """A named event; its id (`<job>:<seq>`) lets a client resume with Last-Event-ID."""
    return ServerSentEvent(
        event=chunk.event, data=orjson.dumps(chunk.data).decode(), id=f"{job_id}:{chunk.seq}"
    )


def ping_event() -> ServerSentEvent:
    return ServerSentEvent(event="ping", data='{"type": "ping"}')
