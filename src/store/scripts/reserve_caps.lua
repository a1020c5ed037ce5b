-- Reserve room under every cap a new conversion counts against, or none.
--
-- KEYS[i]  the cap hash of entry i   cb:{cap:<offer>}:<period>
-- ARGV     four values per entry: field, increment, limit, ttl (0 = none)
--
-- Returns 0 when every counter moved, or the 1-based index of the first cap
-- that the conversion would exceed (then nothing moved). All keys share the
-- offer's {cap:<offer>} tag.

local n = #KEYS
for i = 1, n do
  local b = (i - 1) * 4
  local current = tonumber(redis.call('HGET', KEYS[i], ARGV[b + 1]) or '0')
  if current + tonumber(ARGV[b + 2]) > tonumber(ARGV[b + 3]) then
    return i
  end
end
for i = 1, n do
  local b = (i - 1) * 4
  redis.call('HINCRBY', KEYS[i], ARGV[b + 1], ARGV[b + 2])
  if ARGV[b + 4] ~= '0' then
    redis.call('EXPIRE', KEYS[i], ARGV[b + 4])
  end
end
return 0
