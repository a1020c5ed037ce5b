-- The one decision in recording a click: is this visitor new to this offer
-- and affiliate? If so, mark them and count a unique click, atomically.
--
-- KEYS[1]  the duplicate marker      cb:{S}:u:<offer>|<aff>|<visitor>
-- KEYS[2]  today's counters          cb:{S}:st:<today>
-- ARGV[1]  duplicate-click window, seconds (> 0)
-- ARGV[2]  the unique-click counter  <offer>|<aff>|uclk
--
-- Returns 1 for a unique click, 0 for a duplicate.
--
-- It runs in the same pipeline as the plain commands that store the click
-- record and count the click (HSET, EXPIRE NX, EXPIRE GT, HINCRBY): only
-- this conditional part needs a script. Each redis.call costs Redis ~2 µs of
-- conversion on top of the command, so the unconditional writes stay outside
-- (docs/PERFORMANCE.md). Both keys share the shard tag {S} of the click.

if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
  return 1
end
return 0
