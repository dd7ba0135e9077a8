"""One streaming reply for every route: the first chunk is awaited before any byte is sent.

Errors before the first chunk are plain HTTP errors (api/errors.py turns them into a
response); after it, each route's error event ends the stream. A stream given `opening`
events (a background response's `queued`, none on a resume past them) starts at once instead,
sending them, and every error is then an error event. The routes differ only in how a
chunk becomes SSE events (`render`), what closes a stream (`closing`), how pings look, and
how an error after the start reads (`render_failure`; by default api/errors.py's error event),
and what is done once the stream has ended, however it ended (`on_end`).

A client that reads nothing for `send_timeout_s` (its socket buffers full, each send blocked)
is dropped: the stream closes as on a disconnect, which cancels its job.

A stream runs in its request's task and one more, which notices the client going away and
ends by itself: sse-starlette's own response starts a task for each helper (ping, disconnect
and exit-signal listeners) and cancels them when the stream ends, and each cancellation is a
CancelledError with its traceback and frames: ~100 objects of cyclic garbage a stream, which
at 1,000 streams ending within a second made garbage collections of up to 128 ms, a stall
every open stream waits out (docs/benchmarks.md). Here the ping is a timeout of the stream's
own wait for its next chunk, and the disconnect listener ends as the response completes
(uvicorn answers `receive` with http.disconnect then). Server shutdown needs no listener:
the front end turns sse-starlette's off (api/app.py) and uvicorn cancels the requests still
streaming when its drain ends.

Chunks that arrived together (a burst, or a relay catching up under load) go out in one write:
the per-send cost of the ASGI stack is paid once per burst, not once per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import Response
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from api.errors import error_event, mid_stream_error
from api.relay.disconnect import ClientDisconnected
from api.relay.job_relay import JobRelay
from shared.errors import FleetError
from shared.stream.chunk import Chunk

logger = logging.getLogger(__name__)

ChunkRenderer = Callable[[Chunk], Iterable[ServerSentEvent]]
FailureRenderer = Callable[[FleetError], Iterable[ServerSentEvent]]


class _ClientWatch:
    """Notices the client going away, in a task that ends by itself: uvicorn (its httptools
    protocol) answers `receive` with http.disconnect once the client has gone or the response
    is complete. Going away cancels the scope of `cancelling`, if one is open."""

    def __init__(self, receive: Receive) -> None:
        self.gone = False
        self._scope: anyio.CancelScope | None = None
        self._task = asyncio.create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        if self._scope is not None:
            self._scope.cancel()

    @contextlib.contextmanager
    def cancelling(self) -> Iterator[anyio.CancelScope]:
        with anyio.CancelScope() as scope:
            self._scope = scope
            if self.gone:
                scope.cancel()
            try:
                yield scope
            finally:
                self._scope = None

    async def ended(self) -> None:
        """Once the response is complete: the task ends by itself."""
        await self._task

    def stop(self) -> None:
        """The response will not complete (an error, the server's shutdown)."""
        self._task.cancel()


class _StreamResponse(EventSourceResponse):
    """sse-starlette's response, its chunks sent from the request's task; `watch` (started
    before the first chunk) ends the stream if the client goes away."""

    def __init__(self, events: AsyncIterator[bytes], watch: _ClientWatch, **options: Any) -> None:
        super().__init__(events, **options)
        self._watch = watch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "HEAD":  # sse-starlette's answer: headers, no stream
            self._watch.stop()
            await super().__call__(scope, receive, send)
            return
        try:
            with self._watch.cancelling():
                await self._stream_response(send)
        except SendTimeoutError:
            # The stream's generator has closed by now (its job cancelled); the connection
            # is left to the server to close (uvicorn logs it as an incomplete response).
            self._watch.stop()
            logger.warning("the client read nothing for %.0f s; stream dropped", self.send_timeout)
            return
        except BaseException:
            self._watch.stop()
            raise
        await self._watch.ended()


async def stream_reply(
    relay: JobRelay,
    request: Request,
    *,
    render: ChunkRenderer,
    ping_interval_s: float,
    send_timeout_s: float,
    ping_factory: Callable[[], ServerSentEvent] | None = None,
    closing: Iterable[ServerSentEvent] = (),
    headers: dict[str, str] | None = None,
    render_failure: FailureRenderer | None = None,
    on_end: Callable[[], Awaitable[None]] | None = None,
    opening: list[ServerSentEvent] | None = None,
) -> Response:
    """The relay's chunks as an SSE response; the relay is closed whatever happens."""
    watch = _ClientWatch(request.receive)
    first = None if opening is not None else await _first_chunk(relay, watch)

    stream = _Stream(relay, render, ping_factory or _comment_ping, ping_interval_s)
    events = stream.events(
        first,
        opening=opening or (),
        closing=closing,
        failure=render_failure or _error_event_at(request.url.path),
        on_end=on_end,
    )
    return _StreamResponse(events, watch, headers=headers, send_timeout=send_timeout_s, ping=0)


@dataclass(frozen=True)
class _Stream:
    """A relay's chunks as SSE bytes, bursts in one write, pings at their interval."""

    relay: JobRelay
    render: ChunkRenderer
    ping: Callable[[], ServerSentEvent]
    ping_interval_s: float

    async def events(
        self,
        first: Chunk | None,
        *,
        opening: Iterable[ServerSentEvent],
        closing: Iterable[ServerSentEvent],
        failure: FailureRenderer,
        on_end: Callable[[], Awaitable[None]] | None,
    ) -> AsyncIterator[bytes]:
        relay = self.relay
        try:
            if payload := _encoded(opening):
                yield payload
            chunk: Chunk | None = first
            ping_at = time.monotonic() + self.ping_interval_s
            while True:
                if chunk is not None:
                    burst, error = await _rest_of_burst(relay, chunk)
                    if payload := _encoded(event for each in burst for event in self.render(each)):
                        yield payload
                    if error is not None:
                        raise error
                    if relay.finished:
                        break
                if time.monotonic() >= ping_at:  # pings at their interval, chunks or not
                    yield self.ping().encode()
                    ping_at = time.monotonic() + self.ping_interval_s
                chunk = await relay.chunk_within(ping_at - time.monotonic())
            if payload := _encoded(closing):
                yield payload
        except Exception as exc:  # a stream ends in an error event, never silently cut
            yield _encoded(failure(mid_stream_error(exc)))
        finally:
            with anyio.CancelScope(shield=True):
                await _end(relay, on_end)


async def _first_chunk(relay: JobRelay, watch: _ClientWatch) -> Chunk:
    """Awaited before any byte is sent: errors until then are plain HTTP errors, and a
    client gone meanwhile raises ClientDisconnected. The relay is closed if it fails."""
    try:
        with watch.cancelling() as waiting:
            first = await relay.next_chunk()
        if waiting.cancelled_caught:
            raise ClientDisconnected
    except BaseException:
        watch.stop()
        await relay.close()
        raise
    return first


def _error_event_at(path: str) -> FailureRenderer:
    return lambda error: [error_event(error, path)]


def _encoded(events: Iterable[ServerSentEvent]) -> bytes:
    return b"".join(event.encode() for event in events)


def _comment_ping() -> ServerSentEvent:
    return ServerSentEvent(comment=f"ping - {datetime.now(UTC)}")


async def _end(relay: JobRelay, on_end: Callable[[], Awaitable[None]] | None) -> None:
    await relay.close()
    if on_end is not None:
        await on_end()


async def _rest_of_burst(relay: JobRelay, first: Chunk) -> tuple[list[Chunk], Exception | None]:
    """`first` and the chunks that have arrived after it; the error that ended them, if one
    did (sent after them)."""
    burst = [first]
    try:
        while (chunk := await relay.ready_chunk()) is not None:
            burst.append(chunk)
    except Exception as exc:  # an error chunk, or Redis lost: the stream's error event
        return burst, exc
    return burst, None
