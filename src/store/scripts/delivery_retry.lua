-- Queues a dead or pending delivery again, due now, with the whole retry
-- schedule ahead of it (an operator's retry).
--
-- KEYS[1]  the delivery record         cb:{S}:d:<id>
-- KEYS[2]  the shard's delivery queue  cb:{S}:dq
-- KEYS[3]  the shard's pending deliveries cb:{S}:dp
-- KEYS[4]  the shard's dead deliveries cb:{S}:dx
-- ARGV[1]  the delivery id
-- ARGV[2]  now, unix milliseconds
-- ARGV[3]  retention of the record, seconds
--
-- Returns queued, delivered or missing.
local state = redis.call('HMGET', KEYS[1], 'st', 't')
if not state[1] then
  return 'missing'
end
if state[1] == 'd' then
  return 'delivered'
end
redis.call('HSET', KEYS[1], 'st', 'p', 'r', 0, 'na', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], state[2], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
return 'queued'
