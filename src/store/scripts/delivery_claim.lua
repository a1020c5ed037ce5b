-- Leases the due deliveries of one shard.
--
-- KEYS[1]  the shard's delivery queue  cb:{S}:dq (score: due time, ms)
-- ARGV[1]  now, unix milliseconds
-- ARGV[2]  the lease: its end in ms plus a fraction unique to this claim
-- ARGV[3]  deliveries at most
--
-- Returns the ids leased. Each stays in the queue with the lease as its
-- score: a worker that dies leaves it to come due again when the lease ends.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
if #due == 0 then
  return due
end
local args = {}
for _, id in ipairs(due) do
  args[#args + 1] = ARGV[2]
  args[#args + 1] = id
end
redis.call('ZADD', KEYS[1], unpack(args))
return due
