"""Time to first token (TTFT): the one definition ccfleet measures.

TTFT runs from the instant a front end receives a request to the instant its relay takes the
answer's first token for the client: the first `content_block_delta` event (text, thinking or
a tool's input). A stream sends that event on at once; a whole Message goes out when complete.
TTFT so includes admission, the wait in the queue, the CLI's start and the upstream's first
token, but not the envelope sent before it (`message_start`, `content_block_start`, pings).
An answer without a content delta (an error, say) has no TTFT, and neither has a stream
resumed with Last-Event-ID: its first token went to the request that started it.

It is measured once per request, by a `FirstTokenClock`, and read by the Prometheus histogram
`ccfleet_time_to_first_token_seconds` (api/relay/relays.py) and by the dashboard's p50 and p99
(api/telemetry/request_recorder.py, shared/telemetry/request_stats.py); bench/ttft.py times
the same two events from the client's side.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

TOKEN_EVENT = "content_block_delta"
"""The SSE event that carries an answer's tokens; its first one ends the TTFT."""


def is_token_event(event: str | None) -> bool:
    """Does an SSE event of this name carry a token of the answer?"""
    return event == TOKEN_EVENT


@dataclass
class FirstTokenClock:
    """One request's TTFT: started when the front end receives the request, stopped by the
    first token relayed. `ttft_s` stays None until then, and for a resumed stream."""

    received_at_s: float = field(default_factory=time.monotonic)
    ttft_s: float | None = None
    resumed: bool = False
    """The request resumes a stream: its answer's first token was relayed before."""

    def relayed(self, event: str | None) -> float | None:
        """Note an event the relay takes for the client: the TTFT (seconds) if it is the
        request's first token, else None."""
        if self.resumed or self.ttft_s is not None or not is_token_event(event):
            return None
        self.ttft_s = time.monotonic() - self.received_at_s
        return self.ttft_s
