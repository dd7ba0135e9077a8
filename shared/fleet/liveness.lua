-- Whether a worker lives (shared/fleet/liveness.py states the rule), for the scripts that ask.

-- 1 while worker `worker_id` lives, else 0. `heartbeat_prefix` and `life_prefix` followed by
-- the id name its heartbeat (a hash that expires unless the worker beats) and its life line
-- (a channel only the worker subscribes to, so it closes when the worker's process dies).
local function worker_alive(heartbeat_prefix, life_prefix, worker_id)
  local heartbeat = heartbeat_prefix .. worker_id
  if redis.call('EXISTS', heartbeat) == 0 then return 0 end
  local held_on = redis.call('HGET', heartbeat, 'life_run_id')
  if not held_on or held_on == '' then return 1 end  -- no life line yet: the heartbeat decides
  if redis.call('PUBSUB', 'NUMSUB', life_prefix .. worker_id)[2] > 0 then return 1 end
  -- Nobody holds the line. A restart or a failover of Redis ends every subscription too, so
  -- the line counts only on the server the worker opened it on, until it opens it again.
  local run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
  if run_id == held_on then return 0 end
  return 1
end
