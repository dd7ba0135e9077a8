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

Chunks that arrived together (a burst, or a relay catching up under load) go out in one write:
the per-send cost of the ASGI stack is paid once per burst, not once per event.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import anyio
from fastapi import Request
from fastapi.responses import Response
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from api.errors import error_event, mid_stream_error
from api.relay.disconnect import until_disconnected
from api.relay.job_relay import JobRelay
from shared.errors import FleetError
from shared.stream.chunk import Chunk

logger = logging.getLogger(__name__)

ChunkRenderer = Callable[[Chunk], Iterable[ServerSentEvent]]
FailureRenderer = Callable[[FleetError], Iterable[ServerSentEvent]]


class _BoundedEventSource(EventSourceResponse):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            # The stream's generator has closed by now (its job cancelled); the connection
            # is left to the server to close (uvicorn logs it as an incomplete response).
            logger.warning("the client read nothing for %.0f s; stream dropped", self.send_timeout)


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
    first = None if opening is not None else await _first_chunk(relay, request)
    path = request.url.path
    error_events = render_failure or (lambda error: [error_event(error, path)])

    async def events() -> AsyncIterator[ServerSentEvent | bytes]:
        try:
            for event in opening or ():
                yield event
            chunk = first or await relay.next_chunk()
            while True:
                burst, failure = await _rest_of_burst(relay, chunk)
                if payload := b"".join(event.encode() for each in burst for event in render(each)):
                    yield payload
                if failure is not None:
                    raise failure
                if relay.finished:
                    break
                chunk = await relay.next_chunk()
            for event in closing:
                yield event
        except Exception as exc:  # a stream ends in an error event, never silently cut
            for event in error_events(mid_stream_error(exc)):
                yield event
        finally:
            with anyio.CancelScope(shield=True):
                await _end(relay, on_end)

    return _BoundedEventSource(
        events(),
        ping=ping_interval_s,
        ping_message_factory=ping_factory,
        headers=headers,
        send_timeout=send_timeout_s,
    )


async def _first_chunk(relay: JobRelay, request: Request) -> Chunk:
    try:
        return await until_disconnected(request, relay.next_chunk())
    except BaseException:
        await relay.close()
        raise


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
