-- Store one click and count it, atomically, in one round trip.
--
-- KEYS[1]  the click's hour bucket    cb:{S}:c:<hour><bucket>
-- KEYS[2]  today's counters          cb:{S}:st:<today>
-- KEYS[3]  the duplicate marker      cb:{S}:u:<offer>|<aff>|<visitor>
-- ARGV[1]  the click record without its last field (the unique flag)
-- ARGV[2]  seconds until the click's attribution window closes
-- ARGV[3]  counter field prefix      <offer>|<aff>|
-- ARGV[4]  duplicate-click window, seconds; 0 turns detection off
-- ARGV[5]  the click's field in the bucket (the random part of its id)
--
-- Returns 1 for a unique click, 0 for a duplicate. All three keys share the
-- shard tag {S}, which clickback derives from the visitor hash.
--
-- The bucket lives as long as its longest-lived click: its TTL only ever
-- grows. A click whose own window closed earlier is refused by clickback on
-- read (the record carries its window), not by Redis.

local unique = '1'
if ARGV[4] ~= '0' and not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[4]) then
  unique = '0'
end
redis.call('HSET', KEYS[1], ARGV[5], ARGV[1] .. unique)
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
redis.call('HINCRBY', KEYS[2], ARGV[3] .. 'clk', 1)
if unique == '1' then
  redis.call('HINCRBY', KEYS[2], ARGV[3] .. 'uclk', 1)
end
return tonumber(unique)
