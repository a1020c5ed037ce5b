-- Records how one delivery attempt ended, if the caller still holds the lease.
--
-- KEYS[1]  the delivery record         cb:{S}:d:<id>
-- KEYS[2]  the shard's delivery queue  cb:{S}:dq
-- KEYS[3]  the shard's pending deliveries cb:{S}:dp
-- KEYS[4]  the shard's dead deliveries cb:{S}:dx
-- ARGV[1]  the delivery id
-- ARGV[2]  the lease the caller holds (its queue score)
-- ARGV[3]  how it ended: delivered, failed, dead, postponed, gone
-- ARGV[4]  now, unix milliseconds
-- ARGV[5]  when to try again (failed, postponed), ms, or ''
-- ARGV[6]  the HTTP status of the answer, or ''
-- ARGV[7]  the error, or ''
-- ARGV[8]  the URL template used, or ''
-- ARGV[9]  retention of the record (and of the dead index), seconds
--
-- Returns 1, or 0 when the lease was lost: another worker holds the
-- delivery (or it was delivered), and nothing is written.
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then
  return 0
end
local how = ARGV[3]
if how == 'gone' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 1
end
if how == 'postponed' then
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
  return 1
end
redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HINCRBY', KEYS[1], 'r', 1)
redis.call('HSET', KEYS[1], 'la', ARGV[4], 'h', ARGV[6], 'e', ARGV[7], 'u', ARGV[8])
if how == 'failed' then
  redis.call('HSET', KEYS[1], 'na', ARGV[5])
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
else
  redis.call('HSET', KEYS[1], 'st', how == 'delivered' and 'd' or 'x', 'na', '')
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  if how == 'dead' then
    redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
    redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[4] - ARGV[9] * 1000)
    redis.call('EXPIRE', KEYS[4], ARGV[9])
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[9])
return 1
