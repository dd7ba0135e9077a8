-- Start an attempt on a worker (JobQueue.claim). {outcome, score or cooling_until[, last chunk]}:
-- 'cooling' while the account cools; 'taken' when it runs elsewhere, left arq's queue or is not
-- due yet; 'behind' (`first_only`) when older work waits; else marked in progress as arq's
-- start_jobs marks it and 'claimed', or 'stale' if it is not its job's current attempt (or the
-- job ended): arq runs both, a stale one ends at once. A claimed attempt that journaled chunks
-- before (an earlier run of it) gets the newest one.
-- KEYS: arq_in_progress arq_queue account record lane journal interactive_lane
-- ARGV: attempt_id now_ms now_s in_progress_ms first_only attempt worker_id job_id
--       record_ttl_s
local cooling_until = redis.call('HGET', KEY.account, 'cooling_until')
if cooling_until and tonumber(cooling_until) > tonumber(ARG.now_s) then
  return {'cooling', cooling_until}
end
if redis.call('EXISTS', KEY.arq_in_progress) == 1 then return {'taken', ''} end
local score = redis.call('ZSCORE', KEY.arq_queue, ARG.attempt_id)
if not score or tonumber(score) > tonumber(ARG.now_ms) then return {'taken', ''} end
if ARG.first_only == '1' then
  local mine = redis.call('ZSCORE', KEY.lane, ARG.job_id)
  if not mine then return {'behind', ''} end
  local older = redis.call('ZRANGEBYSCORE', KEY.lane, '-inf', '(' .. mine, 'LIMIT', 0, 1)
  if #older > 0 then return {'behind', ''} end
  if KEY.interactive_lane ~= KEY.lane and redis.call('ZCARD', KEY.interactive_lane) > 0 then
    return {'behind', ''}
  end
end
redis.call('SET', KEY.arq_in_progress, '1', 'PX', ARG.in_progress_ms)
local r = redis.call('HMGET', KEY.record, 'attempt', 'status')
if not r[1] or tonumber(r[1]) ~= tonumber(ARG.attempt) or (r[2] ~= 'waiting' and r[2] ~= 'running') then
  return {'stale', score}
end
redis.call('HSET', KEY.record, 'status', 'running', 'worker', ARG.worker_id, 'started_at_ms', ARG.now_ms)
redis.call('EXPIRE', KEY.record, ARG.record_ttl_s)
redis.call('ZREM', KEY.lane, ARG.job_id)
local last = journal_last(KEY.journal)
if not last then return {'claimed', score} end
return {'claimed', score, last}
