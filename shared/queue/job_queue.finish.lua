-- The job ended (JobQueue.finish), if `attempt` is still its current one: its record drops the
-- request and is kept `record_ttl_s` more. Compare-and-set on the attempt number.
-- KEYS: record
-- ARGV: attempt record_ttl_s handed_off_at_ms
local attempt = redis.call('HGET', KEY.record, 'attempt')
if not attempt or tonumber(attempt) ~= tonumber(ARG.attempt) then return 0 end
redis.call('HSET', KEY.record, 'status', 'done')
if ARG.handed_off_at_ms ~= '' then
  redis.call('HSET', KEY.record, 'handed_off_at_ms', ARG.handed_off_at_ms)
end
redis.call('HDEL', KEY.record, 'payload')
redis.call('EXPIRE', KEY.record, ARG.record_ttl_s)
return 1
