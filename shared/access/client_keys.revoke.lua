-- Revoke a key while its name still points at it: the name goes, the record says revoked.
-- KEYS: names record
-- ARGV: name digest revoked
if redis.call('HGET', KEY.names, ARG.name) ~= ARG.digest then return 0 end
redis.call('HDEL', KEY.names, ARG.name)
redis.call('SET', KEY.record, ARG.revoked)
return 1
