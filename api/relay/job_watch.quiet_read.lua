-- All a relay's quiet check needs, in one round trip: the journal's chunks after `after_seq`,
-- the job's state (the record's `fields`, status and worker first) and whether its worker
-- beats (its heartbeat key is `heartbeat_prefix` and the worker's id).
-- KEYS: journal record
-- ARGV: after_seq heartbeat_prefix fields...
local state = redis.call('HMGET', KEY.record, unpack(ARG.fields))
local alive = 0
if state[1] == 'running' and state[2] then
  alive = redis.call('EXISTS', ARG.heartbeat_prefix .. state[2])
end
return {journal_after(KEY.journal, ARG.after_seq), state, alive}
