-- A library of the batch store's scripts: `end_if_done(KEY, now, retention)` ends the batch
-- once nothing is left processing (every request counted as a result or as never run); its
-- keys then live `retention` ms more. KEY: the calling script's keys, batch, results,
-- requests, inflight and open (the open batches).
local function end_if_done(KEY, now, retention)
  local r = redis.call('HMGET', KEY.batch, 'count', 'succeeded', 'errored', 'canceled',
                       'expired', 'status')
  if not r[1] or r[6] == 'ended' then return end
  local left = tonumber(r[1])
  for i = 2, 5 do left = left - tonumber(r[i] or 0) end
  if left > 0 then return end
  redis.call('HSET', KEY.batch, 'status', 'ended', 'ended_at_ms', now)
  for _, key in ipairs({KEY.batch, KEY.results, KEY.requests, KEY.inflight}) do
    redis.call('PEXPIRE', key, retention)
  end
  redis.call('ZREM', KEY.open, redis.call('HGET', KEY.batch, 'id'))
end
