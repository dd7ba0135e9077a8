-- All a relay's quiet check needs, in one round trip: the journal's chunks after `after_seq`,
-- the job's state (the record's `fields`, status and worker first) and whether its worker
-- lives (shared/fleet/liveness.py; its keys are the prefixes and the worker's id).
-- KEYS: journal record
-- ARGV: after_seq heartbeat_prefix life_prefix fields...
local state = redis.call('HMGET', KEY.record, unpack(ARG.fields))
local alive = 0
if state[1] == 'running' and state[2] then
  alive = worker_alive(ARG.heartbeat_prefix, ARG.life_prefix, state[2])
end
return {journal_after(KEY.journal, ARG.after_seq), state, alive}
