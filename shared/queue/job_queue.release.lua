-- Undo a claim whose attempt arq ended without running it (JobQueue.release): the job waits
-- again in its lane, if the record still says this attempt runs on this worker.
-- Compare-and-set on the attempt number, atomic in Redis.
-- KEYS: record lane
-- ARGV: attempt worker_id job_id record_ttl_s
local r = redis.call('HMGET', KEY.record, 'attempt', 'status', 'worker', 'enqueued_at_ms')
if not r[1] or tonumber(r[1]) ~= tonumber(ARG.attempt) or r[2] ~= 'running' then return 0 end
if r[3] ~= ARG.worker_id then return 0 end
redis.call('HSET', KEY.record, 'status', 'waiting', 'worker', '')
redis.call('EXPIRE', KEY.record, ARG.record_ttl_s)
redis.call('ZADD', KEY.lane, math.floor(tonumber(r[4])), ARG.job_id)
return 1
