"""The live message: the chunks a worker published together, in one pub/sub message."""

from __future__ import annotations

from typing import Any

from shared.stream import live_message
from shared.stream.chunk import Chunk


def event(seq: int, event_type: str = "content_block_delta") -> Chunk:
    data: dict[str, Any] = {"type": event_type, "index": 0}
    return Chunk(seq=seq, kind="event", event=event_type, data=data)


def test_a_lone_chunk_travels_as_the_chunk_itself() -> None:
    chunk = event(4)
    assert live_message.encode([chunk.to_json()]) == chunk.to_json()
    assert live_message.decode(chunk.to_json()) == [chunk]


def test_chunks_published_together_come_out_in_order() -> None:
    chunks = [event(7, "content_block_stop"), event(8, "message_delta"), event(9, "message_stop")]
    assert live_message.decode(live_message.encode([chunk.to_json() for chunk in chunks])) == chunks


def test_a_reader_that_knows_only_lone_chunks_sees_the_last_one_and_so_a_gap() -> None:
    """A front end of the release before (a rolling upgrade) reads the last chunk, sees the
    numbers before it missing, and reads them from the journal: nothing lost."""
    chunks = [event(7, "content_block_stop"), event(8, "message_delta"), event(9, "message_stop")]
    assert Chunk.from_json(live_message.encode([chunk.to_json() for chunk in chunks])) == chunks[-1]
