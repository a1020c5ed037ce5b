-- Create or move one conversion and its counters, atomically.
--
-- KEYS[1]  the conversion hash          cb:{S}:v:<click_id>:<t|g>:<txid|goal>
-- KEYS[2]  today's counters             cb:{S}:st:<today>
-- KEYS[3]  counters of the day the caller last saw the conversion on
-- ARGV[1]  new status: a (approved), p (pending), r (rejected)
-- ARGV[2]  payout micro-units, or '' to keep the stored payout
-- ARGV[3]  revenue micro-units, or '' to keep the stored revenue
-- ARGV[4]  conversion id to use if this creates the conversion
-- ARGV[5]  today, YYYYMMDD
-- ARGV[6]  the day the caller last saw, YYYYMMDD or ''
-- ARGV[7]  offer id        ARGV[8]  affiliate id
-- ARGV[9]  retention of the conversion record, seconds
-- ARGV[10] now, unix seconds
-- ARGV[11] why a new conversion is rejected (too_fast, cap_reached) or ''
-- ARGV[12] the most a money counter may hold, micro-units (MAX_COUNTER_MICROS)
--
-- Returns one string, the fields joined by NUL:
--   outcome, status, payout, revenue, conversion_id, day, offer, aff, previous, reason
-- with outcome one of created, duplicate, updated, or just 'retry' (the
-- conversion's day moved: look up again) or 'too_large' (a money counter
-- would pass ARGV[12]: nothing was written). One
-- string rather than an array of ten: clickback's Redis client spends more
-- instructions per reply value than on the bytes in it. No field can hold
-- NUL: ids and amounts have fixed alphabets, reasons are fixed words.
--
-- Money stays a decimal string here: Lua numbers are doubles and would lose
-- micro-units above 2^53, so the script never does arithmetic on amounts.
-- The status table is ConversionStatus::can_move_to in src/domain/conversion.rs.

-- Moves one conversion's counts into (or, with undo, out of) a counter hash.
-- Every redis.call costs Redis about twice the bare command (the Lua
-- conversions), so an amount of 0 moves nothing and costs nothing: a missing
-- counter field reads as 0. No closures inside: Lua would build them anew
-- on every call.
local function count(stats, prefix, status, payout, revenue, undo)
  local one = undo and -1 or 1
  if status == 'a' then
    redis.call('HINCRBY', stats, prefix .. 'cv', one)
    if payout ~= '0' then redis.call('HINCRBY', stats, prefix .. 'py', undo and '-' .. payout or payout) end
    if revenue ~= '0' then redis.call('HINCRBY', stats, prefix .. 'rv', undo and '-' .. revenue or revenue) end
  elseif status == 'p' then
    redis.call('HINCRBY', stats, prefix .. 'pd', one)
    if payout ~= '0' then redis.call('HINCRBY', stats, prefix .. 'pp', undo and '-' .. payout or payout) end
  else
    redis.call('HINCRBY', stats, prefix .. 'rj', one)
  end
end

-- Whether counting a conversion keeps the money counters it moves within
-- the bound. Checked before the first write: a failed HINCRBY halfway
-- through would leave the conversion written without all of its counters
-- (Redis does not roll a script back). Lua compares doubles here, which is
-- exact enough: the bound sits far below 2^63, where HINCRBY would fail.
local function fits(stats, prefix, status, payout, revenue)
  local limit = tonumber(ARGV[12])
  if status == 'a' then
    if payout == '0' and revenue == '0' then return true end
    local c = redis.call('HMGET', stats, prefix .. 'py', prefix .. 'rv')
    return tonumber(c[1] or '0') + tonumber(payout) <= limit
      and tonumber(c[2] or '0') + tonumber(revenue) <= limit
  elseif status == 'p' then
    if payout == '0' then return true end
    local c = redis.call('HGET', stats, prefix .. 'pp')
    return tonumber(c or '0') + tonumber(payout) <= limit
  end
  return true
end

local cur = redis.call('HMGET', KEYS[1], 's', 'p', 'r', 'd', 'o', 'a')
local new = ARGV[1]

if not cur[1] then
  local payout = ARGV[2] ~= '' and ARGV[2] or '0'
  local revenue = ARGV[3] ~= '' and ARGV[3] or '0'
  local prefix = ARGV[7] .. '|' .. ARGV[8] .. '|'
  if not fits(KEYS[2], prefix, new, payout, revenue) then
    return 'too_large'
  end
  redis.call('HSET', KEYS[1], 's', new, 'p', payout, 'r', revenue, 'id', ARGV[4],
    'd', ARGV[5], 'o', ARGV[7], 'a', ARGV[8], 't', ARGV[10], 'x', ARGV[11])
  redis.call('EXPIRE', KEYS[1], ARGV[9])
  count(KEYS[2], prefix, new, payout, revenue, false)
  -- Just written: answered from the arguments, not read back.
  return table.concat({'created', new, payout, revenue, ARGV[4], ARGV[5], ARGV[7], ARGV[8], '', ARGV[11]}, '\0')
end

-- The stored conversion, as the answer for a duplicate or an update.
local function reply(outcome, previous)
  local r = redis.call('HMGET', KEYS[1], 's', 'p', 'r', 'id', 'd', 'o', 'a', 'x')
  for i = 1, 8 do r[i] = r[i] or '' end
  return table.concat({outcome, r[1], r[2], r[3], r[4], r[5], r[6], r[7], previous or '', r[8]}, '\0')
end

local old = cur[1]
local moves = (old == 'p' and (new == 'a' or new == 'r')) or (old == 'a' and new == 'r')
if not moves then
  return reply('duplicate')
end

local stats
if cur[4] == ARGV[5] then
  stats = KEYS[2]
elseif cur[4] == ARGV[6] then
  stats = KEYS[3]
else
  return 'retry'
end

local payout = ARGV[2] ~= '' and ARGV[2] or cur[2]
local revenue = ARGV[3] ~= '' and ARGV[3] or cur[3]
local prefix = cur[5] .. '|' .. cur[6] .. '|'
if not fits(stats, prefix, new, payout, revenue) then
  return 'too_large'
end
count(stats, prefix, old, cur[2], cur[3], true)
count(stats, prefix, new, payout, revenue, false)
redis.call('HSET', KEYS[1], 's', new, 'p', payout, 'r', revenue)
return reply('updated', old)
