"""Turns a job's chunks into what the client gets: an SSE stream or one Message."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from sse_starlette import ServerSentEvent

from api.relay.cancel import cancel_job
from api.relay.detached import DetachedJobs
from api.relay.job_reader import JobReader
from api.relay.job_watch import JobWatch
from api.telemetry.request_recorder import RequestTiming
from shared.broker import redis_keys
from shared.broker.outage import OUTAGE_ERRORS, outlasting_outage
from shared.errors import CliFailed, FleetError, Overloaded, from_error
from shared.fleet.lanes import LANES
from shared.queue.job_queue import JobQueue
from shared.stream.chunk import Chunk
from shared.wire.message_builder import MessageBuilder

logger = logging.getLogger(__name__)

_OUTAGE_RETRY_S = 0.25
"""How often a stream's wait tries Redis again during an outage (pings go on meanwhile)."""


class JobRelay:
    """Relays one job to one client: `open` attaches, `close` detaches; a job left unfinished
    is cancelled at once, or after its resume window if nobody resumes it, unless the relay
    `keeps_job` (a background response's: its job runs to its end without a client)."""

    def __init__(
        self,
        redis: Redis,
        reader: JobReader,
        queue: JobQueue,
        watch: JobWatch,
        detached: DetachedJobs,
        *,
        check_interval_s: float,
        redis_outage_s: float,
        resume_window_s: float = 0.0,
        keeps_job: bool = False,
        on_first_token: Callable[[float], None] | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
        timing: RequestTiming | None = None,
    ) -> None:
        self._redis = redis
        self.reader = reader
        self._queue = queue
        self._watch = watch
        self._detached = detached
        self._check_interval_s = check_interval_s
        self._resume_window_s = resume_window_s
        self._keeps_job = keeps_job
        self._redis_outage_s = redis_outage_s
        self.finished = False
        self._on_first_token = on_first_token  # given the TTFT (s)
        self._on_close = on_close  # e.g. the end of a quota lease
        self._timing = timing or RequestTiming()
        self._check_at: float | None = None  # loop time the quiet job is next checked on
        self._outage_since: float | None = None  # loop time Redis first failed a stream's wait

    async def open(self) -> JobRelay:
        readers = redis_keys.job_readers(self.reader.job_id)
        longest_s = max(self._queue.lifetimes.waiting_s(lane) for lane in LANES)

        async def count_reader() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(readers)
                # Kept while any job may wait or run: a relay may stay attached all that time.
                pipe.expire(readers, longest_s)
                await pipe.execute()

        # A new request waits out a short outage too. (Counted twice if Redis went away after
        # counting and before answering: the job then outlives its client, to its time limit.)
        await outlasting_outage(count_reader, limit_s=self._redis_outage_s)
        await self.reader.__aenter__()
        return self

    async def close(self) -> None:
        """Never raises, never waits for Redis: it runs in a stream's `finally`."""
        try:
            await self._detach()
        except OUTAGE_ERRORS:
            logger.warning(
                "redis unavailable: job %s is cancelled when it returns", self.reader.job_id
            )
            if not self.finished:
                self._detached.cancel_later(
                    self.reader.job_id, after_s=0, only_if_alone=False, then=self._on_close
                )
        finally:
            await self.reader.__aexit__(None, None, None)

    async def _detach(self) -> None:
        job_id = self.reader.job_id
        on_close, self._on_close = self._on_close, None  # kept for `close` if Redis failed
        if self.finished:
            # The count decides only what becomes of an unfinished job: a finished one's is
            # left to expire, a round trip saved at every stream's end.
            await _ended(on_close)
            return
        still_reading = await self._redis.decr(redis_keys.job_readers(job_id))
        if still_reading > 0 or self._keeps_job:
            # Another client (the first, or one resuming) holds the job, or nobody needs to (a
            # background response): it goes on, and its lease (a quota's concurrency) with
            # it, until its worker ends both.
            return
        if self._resume_window_s > 0:
            # The job goes on without a client: its lease lasts until the job ends (its
            # worker ends it), or until it is cancelled unresumed.
            self._detached.cancel_later(job_id, after_s=self._resume_window_s, then=on_close)
            return
        await _ended(on_close)
        await cancel_job(self._redis, self._queue, job_id)

    async def next_chunk(self) -> Chunk:
        """The next chunk, waiting as long as the job lives; an error chunk raises."""
        chunk = await self._taken(self._outlasting(self._next_chunk))
        assert chunk is not None  # _next_chunk waits for one
        return chunk

    async def chunk_within(self, wait_s: float) -> Chunk | None:
        """As `next_chunk`, or None if none came within `wait_s` (a stream's ping is due).
        The job's quietness counts on across such calls (a job silent for longer than a ping
        interval is still checked on every `check_interval_s`), and so does a Redis outage:
        pings go on while one is waited out, and it ends the stream once it lasts past
        `redis_outage_s` from its first failure."""
        return await self._taken(self._within(wait_s))

    async def _within(self, wait_s: float) -> Chunk | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            try:
                chunk = await self._next_chunk(max(0.0, deadline - loop.time()))
            except OUTAGE_ERRORS:
                if self._outage_since is None:
                    self._outage_since = loop.time()
                if loop.time() - self._outage_since >= self._redis_outage_s:
                    raise
                await asyncio.sleep(min(_OUTAGE_RETRY_S, max(0.0, deadline - loop.time())))
                if loop.time() >= deadline:
                    return None
                continue
            # Redis answered: a quiet check that failed stays due until one succeeds.
            self._outage_since = None
            return chunk

    async def ready_chunk(self) -> Chunk | None:
        """The next chunk if it has arrived already, else None: the rest of a burst."""
        if self.finished or self.reader.is_dry():  # most chunks come alone: no more work
            return None
        return await self._taken(self._outlasting(lambda: self.reader.next_chunk(0)))

    def _outlasting(self, fetch: Callable[[], Awaitable[Chunk | None]]) -> Awaitable[Chunk | None]:
        return outlasting_outage(fetch, limit_s=self._redis_outage_s)

    async def _taken(self, fetching: Awaitable[Chunk | None]) -> Chunk | None:
        try:
            chunk = await self._fetched(fetching)
        except FleetError as error:
            self._timing.failed(error.status_code)
            raise
        if chunk is not None:
            ttft_s = self._timing.first_token.relayed(chunk.event)
            if ttft_s is not None and self._on_first_token is not None:
                self._on_first_token(ttft_s)
        return chunk

    async def _fetched(self, fetching: Awaitable[Chunk | None]) -> Chunk | None:
        # A Redis restart keeps the job (AOF), and its worker keeps the chunks it could not
        # publish meanwhile and journals them once Redis is back: `fetching` waits the outage
        # out. Chunks whose live message the outage lost are read from the journal (the quiet
        # check).
        try:
            chunk = await fetching
        except OUTAGE_ERRORS as exc:
            logger.warning("lost redis while relaying: %r", exc)
            raise Overloaded(
                "Lost contact with the job queue; please retry.", retry_after_s=1
            ) from exc
        if chunk is None:
            return None
        self.finished = chunk.is_terminal
        if chunk.kind == "error":
            raise from_error(
                chunk.data, retry_after_s=chunk.retry_after_s, should_retry=chunk.should_retry
            )
        return chunk

    async def _next_chunk(self, wait_s: float = math.inf) -> Chunk | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            if self._check_at is None:  # quiet from now on
                self._check_at = loop.time() + self._check_interval_s
            chunk = await self.reader.next_chunk(
                max(0.0, min(self._check_at, deadline) - loop.time())
            )
            if chunk is None and loop.time() >= self._check_at:
                chunk = await self._quiet_check()
            if chunk is not None:
                self._check_at = None
                return chunk
            if loop.time() >= deadline:
                return None

    async def _quiet_check(self) -> Chunk | None:
        """The chunk the journal held if its live message was lost; raise if the job ended
        without an answer. A chunk that arrives while the check's read waits (for the other
        relays' reads it shares a round trip with) ends the check: it goes out at once."""
        job_id, after_seq = self.reader.job_id, self.reader.known_seq
        reading = asyncio.ensure_future(
            self._watch.read(job_id, after_seq=after_seq, still_quiet=self.reader.is_dry)
        )
        with self.reader.interrupting(reading):
            try:
                read = await reading
            except asyncio.CancelledError:
                if _cancelling():  # the relay itself is being cancelled
                    raise
                return await self.reader.next_chunk(0)  # the chunk that came; quiet again later
        quiet = await self._watch.judge(job_id, after_seq=after_seq, read=read)
        # Due until it succeeds: a check Redis failed is tried again at once (outlasting_outage's
        # retries), so an outage is timed from its first failure across a stream's pings.
        self._check_at = None
        self.reader.absorb(quiet.journal)  # chunks whose live message was lost
        chunk = await self.reader.next_chunk(0)
        if chunk is None and not quiet.lives:
            raise CliFailed("The worker ended the request without an answer.")
        return chunk

    async def gather_message(self) -> dict[str, Any]:
        builder = MessageBuilder()
        while not self.finished:
            builder.apply((await self.next_chunk()).data)
        return builder.message


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _ended(lease: Callable[[], Awaitable[None]] | None) -> None:
    if lease is not None:
        with contextlib.suppress(*OUTAGE_ERRORS):  # a lease not ended here expires
            await lease()


def to_sse(chunk: Chunk, job_id: str) -> ServerSentEvent:
    """A named event; its id (`<job>:<seq>`) lets a client resume with Last-Event-ID."""
    return ServerSentEvent(
        event=chunk.event, data=orjson.dumps(chunk.data).decode(), id=f"{job_id}:{chunk.seq}"
    )


def ping_event() -> ServerSentEvent:
    return ServerSentEvent(event="ping", data='{"type": "ping"}')
