-- Requests not yet dispatched are counted as `fill` (canceled or expired); 1 if this call did it.
-- reason "cancel": only an in-progress batch; "expire": any batch not ended, once due.
-- KEYS: batch results requests inflight open
-- ARGV: now retention fill reason
local r = redis.call('HMGET', KEY.batch, 'status', 'awaiting', 'count', 'expires_at_ms', 'fill')
if not r[1] or r[1] == 'ended' then return 0 end
if ARG.reason == 'cancel' and r[1] ~= 'in_progress' then return 0 end
if ARG.reason == 'expire' and tonumber(r[4]) > tonumber(ARG.now) then return 0 end
if ARG.reason == 'cancel' then
  redis.call('HSET', KEY.batch, 'status', 'canceling', 'cancel_initiated_at_ms', ARG.now)
end
if r[5] == '' then redis.call('HSET', KEY.batch, 'fill', ARG.fill) end
redis.call('HINCRBY', KEY.batch, ARG.fill, tonumber(r[2]))
redis.call('HSET', KEY.batch, 'awaiting', 0, 'next', r[3])
end_if_done(KEY, ARG.now, ARG.retention)
return 1
