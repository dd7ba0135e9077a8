-- Give back a request claimed by take_next but not queued (its key's quotas make it wait): it
-- is awaiting again, and the next take of its batch takes it first. Nothing if the batch
-- stopped or the request has a result meanwhile; 1 if given back.
-- KEYS: batch results inflight active
-- ARGV: id index
if redis.call('HGET', KEY.batch, 'status') ~= 'in_progress' then return 0 end
if redis.call('HEXISTS', KEY.results, ARG.index) == 1 then return 0 end
if redis.call('HDEL', KEY.inflight, ARG.index) == 0 then return 0 end
redis.call('HINCRBY', KEY.batch, 'awaiting', 1)
local next = tonumber(redis.call('HGET', KEY.batch, 'next'))
redis.call('HSET', KEY.batch, 'next', math.min(next, tonumber(ARG.index)))
-- Another feeder may have found the batch empty and dropped it from the rotation meanwhile.
if not redis.call('LPOS', KEY.active, ARG.id) then redis.call('RPUSH', KEY.active, ARG.id) end
return 1
