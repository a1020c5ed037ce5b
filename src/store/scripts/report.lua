-- Adds a batch of report counts of one UTC day (store/report.rs), admitting
-- at most ARGV[1] distinct values of each dimension per day.
--
-- KEYS[1]                the day's counters by hour      cb:{rep:<day>}:h
-- KEYS[2d], KEYS[2d+1]   dimension d (1-7: sub1-sub5, source, goal): the
--                        day's counters by its values    cb:{rep:<day>}:<dim>
--                        and the values admitted         cb:{rep:<day>}:<dim>:v
-- ARGV[1]                the cap: distinct values admitted per dimension and day
-- ARGV[2..]              4-tuples: dimension (0: the hours hash), value,
--                        field (HH|offer|aff|code), increment
--
-- A value is counted as itself when it was admitted before, or when the
-- day still has room for it (it is admitted then); otherwise under NUL, the
-- "other" bucket, which no real value can be. Admitted values stay admitted
-- for the day, so every count of a value goes to the same place, its own
-- or "other", whichever instance writes it. The empty value (a click
-- without that sub) is always itself and takes no room.
local cap = tonumber(ARGV[1])
local decided = {}
for i = 2, #ARGV, 4 do
  local d = tonumber(ARGV[i])
  if d == 0 then
    redis.call('HINCRBY', KEYS[1], ARGV[i + 2], ARGV[i + 3])
  else
    local value = ARGV[i + 1]
    if value ~= '' then
      local memo = d .. '|' .. value
      local bucket = decided[memo]
      if not bucket then
        local values = KEYS[2 * d + 1]
        if redis.call('SISMEMBER', values, value) == 1 then
          bucket = value
        elseif redis.call('SCARD', values) < cap then
          redis.call('SADD', values, value)
          bucket = value
        else
          bucket = '\0'
        end
        decided[memo] = bucket
      end
      value = bucket
    end
    redis.call('HINCRBY', KEYS[2 * d], ARGV[i + 2] .. '|' .. value, ARGV[i + 3])
  end
end
return 1
