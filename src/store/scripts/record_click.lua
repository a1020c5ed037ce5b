-- Store one click and count it, atomically, in one round trip.
--
-- KEYS[1]  the click                 cb:{S}:c:<click_id>
-- KEYS[2]  today's counters          cb:{S}:st:<today>
-- KEYS[3]  the duplicate marker      cb:{S}:u:<offer>|<aff>|<visitor>
-- ARGV[1]  the click record without its last field (the unique flag)
-- ARGV[2]  TTL of the click, seconds (the attribution window)
-- ARGV[3]  counter field prefix      <offer>|<aff>|
-- ARGV[4]  duplicate-click window, seconds; 0 turns detection off
--
-- Returns 1 for a unique click, 0 for a duplicate. All three keys share the
-- shard tag {S}, which clickback derives from the visitor hash.

local unique = '1'
if ARGV[4] ~= '0' and not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[4]) then
  unique = '0'
end
redis.call('SET', KEYS[1], ARGV[1] .. unique, 'EX', ARGV[2])
redis.call('HINCRBY', KEYS[2], ARGV[3] .. 'clk', 1)
if unique == '1' then
  redis.call('HINCRBY', KEYS[2], ARGV[3] .. 'uclk', 1)
end
return tonumber(unique)
