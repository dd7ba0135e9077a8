-- A request's job ended: end its concurrency lease and drop its tokens reservation (its real
-- usage is booked in the tokens window by the ledger).
-- KEYS: tokens in_flight
-- ARGV: request_id
redis.call('ZREM', KEY.in_flight, ARG.request_id)
local prefix = 'reserved:' .. ARG.request_id .. ':'
for _, member in ipairs(redis.call('ZRANGE', KEY.tokens, 0, -1)) do
  if string.sub(member, 1, #prefix) == prefix then redis.call('ZREM', KEY.tokens, member) end
end
return 1
