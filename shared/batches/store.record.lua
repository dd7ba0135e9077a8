-- Record one request's result, unless it has one (or the batch is gone); 1 if recorded.
-- KEYS: batch results requests inflight open
-- ARGV: index line type now retention
if redis.call('EXISTS', KEY.batch) == 0 then return 0 end
if redis.call('HSETNX', KEY.results, ARG.index, ARG.line) == 0 then return 0 end
if redis.call('PTTL', KEY.results) < 0 then  -- no TTL yet: as long as its batch
  redis.call('PEXPIRE', KEY.results, redis.call('PTTL', KEY.batch))
end
redis.call('HINCRBY', KEY.batch, ARG.type, 1)
redis.call('HDEL', KEY.requests, ARG.index)
redis.call('HDEL', KEY.inflight, ARG.index)
end_if_done(KEY, ARG.now, ARG.retention)
return 1
