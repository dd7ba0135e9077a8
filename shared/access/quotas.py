"""Per-key quotas, exact across any number of front ends: one Lua script admits a request.

Requests per minute and tokens per minute are sliding windows of the last 60 s (sorted sets
scored by time; the script reads Redis's clock, so front ends whose clocks or calls interleave
still agree); tokens are added by the worker when a run reports them (shared/access/ledger.py),
so a minute's tokens count from the moment they are known. Concurrency is a sorted set of the
requests in flight, each scored by when its lease ends: the front end removes it when the
reply ends, and a front end that dies leaks nothing past the lease. The monthly budget is the
key's month-to-date spend (shared/access/ledger.py) against its `monthly_usd`. Over any of them:
429 rate_limit_error with `retry-after`, the seconds until there is room.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis

from shared.access.client_keys import ClientKey
from shared.access.ledger import month_of, next_month_start
from shared.broker import redis_keys
from shared.errors import RateLimited
from shared.fleet.registry import SHOULD_NOT_RETRY_AFTER_S

WINDOW_MS = 60_000

# ARGV: lease (ms), rpm, tpm, concurrency, monthly budget, request id, next month (ms), window.
_ADMIT = """
local clock = redis.call('TIME')  -- one clock for every front end
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local lease_end = now + tonumber(ARGV[1])
local window = tonumber(ARGV[8])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local rpm = tonumber(ARGV[2])
if rpm > 0 then
  local n = redis.call('ZCARD', KEYS[1])
  if n >= rpm then
    local e = redis.call('ZRANGE', KEYS[1], n - rpm, n - rpm, 'WITHSCORES')
    return {'requests per minute', tostring(tonumber(e[2]) + window - now)}
  end
end
local tpm = tonumber(ARGV[3])
if tpm > 0 then
  local entries = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
  local total = 0
  for i = 1, #entries, 2 do total = total + tonumber(string.match(entries[i], ':(%d+)$')) end
  if total >= tpm then
    for i = 1, #entries, 2 do
      total = total - tonumber(string.match(entries[i], ':(%d+)$'))
      if total < tpm then
        return {'tokens per minute', tostring(tonumber(entries[i + 1]) + window - now)}
      end
    end
  end
end
local concurrency = tonumber(ARGV[4])
if concurrency > 0 and redis.call('ZCARD', KEYS[3]) >= concurrency then
  return {'concurrent requests', '1000'}
end
local budget = tonumber(ARGV[5])
if budget > 0 and tonumber(redis.call('GET', KEYS[4]) or '0') >= budget then
  return {'monthly budget', tostring(tonumber(ARGV[7]) - now)}
end
if rpm > 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[6])
  redis.call('PEXPIRE', KEYS[1], window)
end
if concurrency > 0 then
  redis.call('ZADD', KEYS[3], lease_end, ARGV[6])
  local ttl = redis.call('PTTL', KEYS[3])  -- the set lives as long as its longest lease
  if ttl < 0 or now + ttl < lease_end then redis.call('PEXPIREAT', KEYS[3], lease_end) end
end
return {'', '0'}
"""


@dataclass(frozen=True)
class QuotaLease:
    """A request admitted under a key's quotas; `release` when its reply ends."""

    key_name: str
    request_id: str
    counts_concurrency: bool


class Quotas:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._admit = redis.register_script(_ADMIT)

    async def admit(self, key: ClientKey, request_id: str, *, lease_s: float) -> QuotaLease:
        """Count a request against `key`'s quotas, or raise 429 saying which and how long."""
        now_s = time.time()  # for the month; the script keeps Redis's own time
        month = month_of(now_s)
        limit, wait_ms = await self._admit(
            keys=[
                redis_keys.quota_requests(key.name),
                redis_keys.quota_tokens(key.name),
                redis_keys.quota_in_flight(key.name),
                redis_keys.month_spend("key", key.name, month),
            ],
            args=[
                int(lease_s * 1000),
                key.rpm or 0,
                key.tpm or 0,
                key.concurrency or 0,
                key.monthly_usd or 0,
                request_id,
                int(next_month_start(now_s) * 1000),
                WINDOW_MS,
            ],
        )
        if limit:
            wait_s = max(1.0, float(wait_ms) / 1000)
            raise RateLimited(
                f"This API key has reached its limit of {limit.decode()}.",
                retry_after_s=wait_s,
                should_retry=wait_s <= SHOULD_NOT_RETRY_AFTER_S,
            )
        return QuotaLease(key.name, request_id, counts_concurrency=bool(key.concurrency))

    async def release(self, lease: QuotaLease) -> None:
        if lease.counts_concurrency:
            await self._redis.zrem(redis_keys.quota_in_flight(lease.key_name), lease.request_id)
