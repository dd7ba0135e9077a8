-- Replace a key's record while its name still points at it (no update revives a revoked key).
-- KEYS: names record
-- ARGV: name digest replacement
if redis.call('HGET', KEY.names, ARG.name) ~= ARG.digest then return 0 end
redis.call('SET', KEY.record, ARG.replacement)
return 1
