-- Take the next request to run, round-robin between batches: rotate the active list, take the
-- next request of the batch at its head, note it in flight as `claim` ("<job>|<ms>").
-- Answers {batch id, index, request, owner, owner id}, or nil when no batch has one left.
-- The batches' own keys are built from a prefix and suffixes (shared/broker/redis_keys.py):
-- a script naming keys it was not given needs one Redis, not a cluster.
-- KEYS: active
-- ARGV: now claim batch_prefix results_suffix requests_suffix inflight_suffix
local active = KEY.active
for _ = 1, redis.call('LLEN', active) do
  local id = redis.call('LMOVE', active, active, 'LEFT', 'RIGHT')
  if not id then return false end
  local batch = ARG.batch_prefix .. id
  local r = redis.call('HMGET', batch, 'status', 'next', 'count', 'expires_at_ms')
  local usable = r[1] == 'in_progress' and tonumber(r[4]) > tonumber(ARG.now)
  if usable then
    local results, requests = batch .. ARG.results_suffix, batch .. ARG.requests_suffix
    local inflight = batch .. ARG.inflight_suffix
    local index, count = tonumber(r[2]), tonumber(r[3])
    -- Skip requests with a result, and those in flight (`next` may point back at a request
    -- that its key's quotas made wait: store.unclaim.lua).
    while index < count and (redis.call('HEXISTS', results, index) == 1
        or redis.call('HEXISTS', inflight, index) == 1) do
      index = index + 1
    end
    redis.call('HSET', batch, 'next', math.min(index + 1, count))
    if index < count then
      redis.call('HINCRBY', batch, 'awaiting', -1)
      redis.call('HSET', inflight, index, ARG.claim)
      if redis.call('PTTL', inflight) < 0 then
        redis.call('PEXPIRE', inflight, redis.call('PTTL', batch))
      end
      local owner = redis.call('HMGET', batch, 'owner', 'owner_id')
      return {id, index, redis.call('HGET', requests, index), owner[1], owner[2]}
    end
  end
  redis.call('LREM', active, 0, id)
end
return false
