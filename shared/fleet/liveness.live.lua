-- The ids of the workers that beat since `oldest_ms` and live (shared/fleet/liveness.py).
-- KEYS: index
-- ARGV: oldest_ms heartbeat_prefix life_prefix
local live = {}
for _, worker_id in ipairs(redis.call('ZRANGEBYSCORE', KEY.index, ARG.oldest_ms, '+inf')) do
  if worker_alive(ARG.heartbeat_prefix, ARG.life_prefix, worker_id) == 1 then
    live[#live + 1] = worker_id
  end
end
return live
