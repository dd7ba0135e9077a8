-- Whether a worker lives (shared/fleet/liveness.py): 1 or 0.
-- ARGV: heartbeat_prefix life_prefix worker_id
return worker_alive(ARG.heartbeat_prefix, ARG.life_prefix, ARG.worker_id)
