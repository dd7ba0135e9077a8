-- Move a job from attempt `attempt` to the next (JobQueue.requeue): compare-and-set on the
-- attempt number (refused once another attempt took over, or the job was cancelled), then
-- the job waits in its lane again and the next attempt's arq job is queued, as arq's
-- enqueue_job writes one (shared/queue/arq_adapter.py).
-- KEYS: record lane arq_job arq_queue
-- ARGV: attempt next_attempt attempt_id avoid job_id lane_score serialized_job
--       arq_job_ttl_ms attempt_score record_ttl_s
local r = redis.call('HMGET', KEY.record, 'attempt', 'status')
if not r[1] or tonumber(r[1]) ~= tonumber(ARG.attempt) or r[2] == 'cancelled' then return 0 end
redis.call('HSET', KEY.record, 'attempt', ARG.next_attempt, 'attempt_id', ARG.attempt_id,
           'avoid', ARG.avoid, 'worker', '', 'status', 'waiting')
redis.call('EXPIRE', KEY.record, ARG.record_ttl_s)
redis.call('ZADD', KEY.lane, ARG.lane_score, ARG.job_id)
redis.call('SET', KEY.arq_job, ARG.serialized_job, 'PX', ARG.arq_job_ttl_ms)
redis.call('ZADD', KEY.arq_queue, ARG.attempt_score, ARG.attempt_id)
return 1
