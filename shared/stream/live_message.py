"""The live message: how chunks travel on a job's pub/sub channel, known here and nowhere else.

A worker often has several chunks at once (an answer's closing events, held until the CLI's
`result` confirms them; chunks kept through a Redis outage): it publishes them in one message,
so that every front end relaying the job wakes once for them, not once a chunk. A lone chunk
travels as its own JSON (`Chunk.to_json`); several as the last one's JSON with the ones before it,
in order, in the field `earlier`. A reader that knows only lone chunks (a front end of the
release before, during a rolling upgrade) reads such a message as its last chunk, sees the
numbers before it missing and reads them from the journal, where the same script put them
first: nothing is lost.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from shared.stream.chunk import Chunk

_EARLIER = "earlier"


def encode(chunks: Sequence[bytes]) -> bytes:
    """One message for `chunks` (their JSON, `Chunk.to_json`: consecutive, oldest first; at
    least one)."""
    *earlier, last = chunks
    if not earlier:
        return last
    # `last` is a JSON object: the field goes in before its closing brace.
    return last[:-1] + b',"' + _EARLIER.encode() + b'":[' + b",".join(earlier) + b"]}"


def decode(raw: bytes | str) -> list[Chunk]:
    """The chunks of one message, oldest first."""
    message = orjson.loads(raw)
    earlier = message.pop(_EARLIER, ())
    return [*(Chunk.model_validate(chunk) for chunk in earlier), Chunk.model_validate(message)]
