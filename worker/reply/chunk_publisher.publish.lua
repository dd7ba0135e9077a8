-- Publish chunk `seq` of a job: journal it, then send it live. Fenced on the attempt number:
-- 0 when this attempt no longer owns the job (another attempt does, or it was cancelled).
-- The first chunk drops the request from the record and, given a `conversation` key (else
-- ''), notes the account answering that conversation for `account_ttl_s`; given a
-- `conversation_worker` key too, the worker answering it for `worker_ttl_s`.
-- KEYS: journal record conversation conversation_worker
-- ARGV: seq chunk max_chunks ttl_s channel attempt account account_ttl_s worker worker_ttl_s
local r = redis.call('HMGET', KEY.record, 'attempt', 'status')
if not r[1] or tonumber(r[1]) ~= tonumber(ARG.attempt) or r[2] == 'cancelled' then return 0 end
if ARG.seq == '1' then
  redis.call('HDEL', KEY.record, 'payload')
  if KEY.conversation ~= '' then
    redis.call('SET', KEY.conversation, ARG.account, 'EX', ARG.account_ttl_s)
  end
  if KEY.conversation_worker ~= '' then
    redis.call('SET', KEY.conversation_worker, ARG.worker, 'EX', ARG.worker_ttl_s)
  end
end
local failed = journal_append(KEY.journal, ARG.seq, ARG.chunk, ARG.max_chunks)
if failed then return failed end
redis.call('PUBLISH', ARG.channel, ARG.chunk)
redis.call('EXPIRE', KEY.journal, ARG.ttl_s)
return 1
