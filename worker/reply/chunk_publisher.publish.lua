-- Publish chunks `first_seq`, `first_seq` + 1... of a job: journal each, then send `message`
-- (shared/stream/live_message.py: all of them in one) live. Fenced on the attempt number:
-- 0 when this attempt no longer owns the job (another attempt does, or it was cancelled).
-- Chunk 1 drops the request from the record and, given a `conversation` key (else ''), notes
-- the account answering that conversation for `account_ttl_s`; given a `conversation_worker`
-- key too, the worker answering it for `worker_ttl_s`.
-- KEYS: journal record conversation conversation_worker
-- ARGV: first_seq max_chunks ttl_s channel attempt account account_ttl_s worker worker_ttl_s
--       message chunks...
local r = redis.call('HMGET', KEY.record, 'attempt', 'status')
if not r[1] or tonumber(r[1]) ~= tonumber(ARG.attempt) or r[2] == 'cancelled' then return 0 end
local first_seq = tonumber(ARG.first_seq)
if first_seq == 1 then
  redis.call('HDEL', KEY.record, 'payload')
  if KEY.conversation ~= '' then
    redis.call('SET', KEY.conversation, ARG.account, 'EX', ARG.account_ttl_s)
  end
  if KEY.conversation_worker ~= '' then
    redis.call('SET', KEY.conversation_worker, ARG.worker, 'EX', ARG.worker_ttl_s)
  end
end
for i, chunk in ipairs(ARG.chunks) do
  local failed = journal_append(KEY.journal, string.format('%d', first_seq + i - 1), chunk,
                                ARG.max_chunks)
  if failed then return failed end
end
redis.call('PUBLISH', ARG.channel, ARG.message)
redis.call('EXPIRE', KEY.journal, ARG.ttl_s)
return 1
