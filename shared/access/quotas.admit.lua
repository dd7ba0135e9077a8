-- Admit a request under a key's quotas, or say which one it is over and for how long (ms;
-- -1: never, the request alone reserves more tokens than the limit).
-- A new job reserves `tokens` (its estimated input plus max_tokens) in the tokens window, as
-- the member `reserved:<request_id>:<tokens>`; the worker swaps it for the real usage.
-- KEYS: requests tokens in_flight month_spend
-- ARGV: lease_ms rpm tpm concurrency monthly_budget request_id next_month_ms window_ms reserve
local clock = redis.call('TIME')  -- one clock for every front end
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local lease_end = now + tonumber(ARG.lease_ms)
local window = tonumber(ARG.window_ms)
redis.call('ZREMRANGEBYSCORE', KEY.requests, '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEY.tokens, '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEY.in_flight, '-inf', now)
local rpm = tonumber(ARG.rpm)
if rpm > 0 then
  local n = redis.call('ZCARD', KEY.requests)
  if n >= rpm then
    local e = redis.call('ZRANGE', KEY.requests, n - rpm, n - rpm, 'WITHSCORES')
    return {'requests per minute', tostring(tonumber(e[2]) + window - now)}
  end
end
local tpm = tonumber(ARG.tpm)
local tokens = tonumber(ARG.reserve)
if tpm > 0 then
  -- A request reserving nothing (a resume) still needs one token of room.
  local need = math.max(tokens, 1)
  if need > tpm then return {'tokens per minute', '-1'} end
  local entries = redis.call('ZRANGE', KEY.tokens, 0, -1, 'WITHSCORES')
  local total = 0
  for i = 1, #entries, 2 do total = total + tonumber(string.match(entries[i], ':(%d+)$')) end
  if total + need > tpm then
    for i = 1, #entries, 2 do
      total = total - tonumber(string.match(entries[i], ':(%d+)$'))
      if total + need <= tpm then
        return {'tokens per minute', tostring(tonumber(entries[i + 1]) + window - now)}
      end
    end
  end
end
local concurrency = tonumber(ARG.concurrency)
if concurrency > 0 and redis.call('ZCARD', KEY.in_flight) >= concurrency then
  return {'concurrent requests', '1000'}
end
local budget = tonumber(ARG.monthly_budget)
if budget > 0 and tonumber(redis.call('GET', KEY.month_spend) or '0') >= budget then
  return {'monthly budget', tostring(tonumber(ARG.next_month_ms) - now)}
end
if rpm > 0 then
  redis.call('ZADD', KEY.requests, now, ARG.request_id)
  redis.call('PEXPIRE', KEY.requests, window)
end
if tpm > 0 and tokens > 0 then
  redis.call('ZADD', KEY.tokens, now, 'reserved:' .. ARG.request_id .. ':' .. tokens)
  redis.call('PEXPIRE', KEY.tokens, window)
end
if concurrency > 0 then
  redis.call('ZADD', KEY.in_flight, lease_end, ARG.request_id)
  local ttl = redis.call('PTTL', KEY.in_flight)  -- the set lives as long as its longest lease
  if ttl < 0 or now + ttl < lease_end then redis.call('PEXPIREAT', KEY.in_flight, lease_end) end
end
return {'', '0'}
