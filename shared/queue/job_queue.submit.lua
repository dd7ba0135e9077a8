-- Queue a new job (JobQueue.submit): unless its lane is full or Redis has no room for it,
-- write its record, its lane entry and its first attempt's arq job together, and wake idle
-- workers. 'queued', 'lane full' or 'no memory'. A job already queued is left as it is: a try
-- whose reply a Redis restart cut off is sent again (shared/broker/outage.py).
-- memory_budget 0: `budget_share` of Redis's maxmemory (no check if it has none either).
-- KEYS: lane record arq_job arq_queue
-- ARGV: lane_limit stale_before_ms memory_budget budget_share job_bytes record_ttl_s
--       lane_score job_id arq_job_ttl_ms serialized_job attempt_id attempt_score
--       wake_channel record_fields...
if redis.call('EXISTS', KEY.record) == 1 then return 'queued' end
redis.call('ZREMRANGEBYSCORE', KEY.lane, 0, ARG.stale_before_ms)  -- heals entries nobody removed
if redis.call('ZCARD', KEY.lane) >= tonumber(ARG.lane_limit) then return 'lane full' end
local memory = redis.call('INFO', 'memory')
local budget = tonumber(ARG.memory_budget)
if budget == 0 then
  budget = math.floor(tonumber(string.match(memory, 'maxmemory:(%d+)')) * tonumber(ARG.budget_share))
end
local used = tonumber(string.match(memory, 'used_memory:(%d+)'))
if budget > 0 and used + tonumber(ARG.job_bytes) > budget then return 'no memory' end
redis.call('HSET', KEY.record, unpack(ARG.record_fields))
redis.call('EXPIRE', KEY.record, ARG.record_ttl_s)
redis.call('ZADD', KEY.lane, ARG.lane_score, ARG.job_id)
-- As arq's enqueue_job writes a job (shared/queue/arq_adapter.py); arq drops an attempt not
-- started by then.
redis.call('SET', KEY.arq_job, ARG.serialized_job, 'PX', ARG.arq_job_ttl_ms)
redis.call('ZADD', KEY.arq_queue, ARG.attempt_score, ARG.attempt_id)
redis.call('PUBLISH', ARG.wake_channel, ARG.attempt_id)  -- idle workers may claim it straight away
return 'queued'
