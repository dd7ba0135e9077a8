"""Request rate, time to first token and error rate over the last minutes, kept in Redis.

Every front end adds each request that ends to the hash of its 10-second bucket
(`redis_keys.request_stats`): `requests`, `errors`, and one counter per TTFT histogram bin
(`t<bin>`). Buckets expire after the longest window read, so Redis holds at most ~32 small
hashes. Any front end reading the same buckets computes the same figures, whichever front
end served the requests.

The histogram bins grow by 10 % from 10 ms to 10 minutes; a percentile is reported as the
geometric middle of its bin, so it is within 5 % of the exact value.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel
from redis.asyncio import Redis

from shared.broker import redis_keys

BUCKET_S = 10
WINDOWS_S: tuple[int, ...] = (60, 300)
"""The windows the dashboard shows: the last minute and the last five minutes."""
TTL_S = max(WINDOWS_S) + 2 * BUCKET_S

_FIRST_EDGE_MS = 10.0
_GROWTH = 1.1
_BINS = math.ceil(math.log(600_000 / _FIRST_EDGE_MS) / math.log(_GROWTH)) + 1


@dataclass(frozen=True)
class RequestOutcome:
    """One request that ended: its HTTP status (an error event mid-stream counts with its
    own status) and its time to first token, if it has one (shared/telemetry/first_token.py)."""

    ended_at_s: float
    status: int
    ttft_ms: float | None = None

    @property
    def failed(self) -> bool:
        """The fleet failed it: 5xx, 529 or a 429. Other 4xx are the client's mistakes."""
        return self.status >= 500 or self.status == 429


class RequestStats(BaseModel):
    window_s: int
    requests: int
    errors: int
    requests_per_s: float
    error_rate: float
    """errors / requests; 0 without requests."""
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    ttft_samples: int


def ttft_bin(ttft_ms: float) -> int:
    """Bin 0 holds everything up to 10 ms; bin i up to 10 ms * 1.1^i; the last, the rest."""
    if ttft_ms <= _FIRST_EDGE_MS:
        return 0
    return min(_BINS - 1, math.ceil(math.log(ttft_ms / _FIRST_EDGE_MS) / math.log(_GROWTH)))


def bin_middle_ms(index: int) -> float:
    if index == 0:
        return _FIRST_EDGE_MS
    return _FIRST_EDGE_MS * math.pow(_GROWTH, index - 0.5)


def bucket_start(at_s: float) -> int:
    return int(at_s // BUCKET_S) * BUCKET_S


async def record_request(redis: Redis, outcome: RequestOutcome) -> None:
    await record_requests(redis, [outcome])


async def record_requests(redis: Redis, outcomes: Sequence[RequestOutcome]) -> None:
    """Add requests that ended, in one round trip: their counts summed per bucket."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for outcome in outcomes:
        bucket = counts[redis_keys.request_stats(bucket_start(outcome.ended_at_s))]
        bucket["requests"] += 1
        if outcome.failed:
            bucket["errors"] += 1
        if outcome.ttft_ms is not None:
            bucket[f"t{ttft_bin(outcome.ttft_ms)}"] += 1
    async with redis.pipeline(transaction=False) as pipe:
        for key, fields in counts.items():
            for field, count in fields.items():
                pipe.hincrby(key, field, count)
            pipe.expire(key, TTL_S)
        await pipe.execute()


async def read_request_stats(redis: Redis, *, now_s: float) -> list[RequestStats]:
    """The figures for each of WINDOWS_S, from one read of the buckets."""
    newest = bucket_start(now_s)
    starts = list(range(newest, newest - max(WINDOWS_S) - BUCKET_S, -BUCKET_S))
    async with redis.pipeline(transaction=False) as pipe:
        for start in starts:
            pipe.hgetall(redis_keys.request_stats(start))
        replies = await pipe.execute()
    buckets = [
        (start, {k.decode(): int(v) for k, v in reply.items()})
        for start, reply in zip(starts, replies, strict=True)
    ]
    return [_window_stats(buckets, window_s, now_s=now_s) for window_s in WINDOWS_S]


def _window_stats(
    buckets: Sequence[tuple[int, dict[str, int]]], window_s: int, *, now_s: float
) -> RequestStats:
    # A bucket counts if any of it lies in the window; the rate divides by the span those
    # buckets cover (window_s to window_s + BUCKET_S), so a partial bucket does not skew it.
    included = [(start, b) for start, b in buckets if start + BUCKET_S > now_s - window_s]
    span_s = max(1.0, now_s - min(start for start, _ in included))
    requests = sum(b.get("requests", 0) for _, b in included)
    errors = sum(b.get("errors", 0) for _, b in included)
    histogram = [0] * _BINS
    for _, b in included:
        for field, count in b.items():
            if field.startswith("t"):
                histogram[int(field[1:])] += count
    samples = sum(histogram)
    return RequestStats(
        window_s=window_s,
        requests=requests,
        errors=errors,
        requests_per_s=requests / span_s,
        error_rate=errors / requests if requests else 0.0,
        ttft_p50_ms=percentile_ms(histogram, 0.50),
        ttft_p99_ms=percentile_ms(histogram, 0.99),
        ttft_samples=samples,
    )


def percentile_ms(histogram: Sequence[int], quantile: float) -> float | None:
    """The middle of the bin holding the sample of rank ceil(quantile * n)."""
    total = sum(histogram)
    if total == 0:
        return None
    rank = max(1, math.ceil(quantile * total))
    seen = 0
    for index, count in enumerate(histogram):
        seen += count
        if seen >= rank:
            return bin_middle_ms(index)
    return bin_middle_ms(len(histogram) - 1)
