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
--
-- The conversion list, written when this creates the conversion:
-- KEYS[4]  the shard's conversions by creation time  cb:{S}:vt
-- KEYS[5]  the shard's conversion id -> location     cb:{S}:vk
-- ARGV[12] what the conversion keeps (subs, source, txid, goal, currency)
-- ARGV[13] the location: <click_id>:<t|g>:<txid|goal>
-- ARGV[14] index entries created before this (Unix seconds) are dropped,
--          a few per new conversion
-- ARGV[15] '1': only move an existing conversion (a manual status change);
--          none there answers 'missing' and writes nothing
--
-- The deliveries, queued with the change when these are given (a
-- conversion whose affiliate has no postback URL and whose offer has no
-- destination for the status sends none of them):
-- KEYS[6]  the affiliate postback's record if this creates the conversion  cb:{S}:d:<id>
-- KEYS[7]  the affiliate postback's record if this moves the conversion seen
-- KEYS[8]  the shard's delivery queue     cb:{S}:dq
-- KEYS[9]  the shard's pending deliveries cb:{S}:dp
-- KEYS[10] the affiliate's deliveries     cb:{S}:da:<aff>
-- KEYS[11] the offer's deliveries         cb:{S}:do:<offer>
-- KEYS[12 .. 11+D]     each destination's record if this creates the conversion
-- KEYS[12+D .. 11+2D]  each destination's record if this moves the conversion seen
-- ARGV[16] the sale amount, micro-units, or ''
-- ARGV[17] now, unix milliseconds: the deliveries are due at once
-- ARGV[18] retention of the delivery records, seconds
-- ARGV[19] the affiliate postback's id if this creates the conversion
-- ARGV[20] the affiliate postback's id if this moves the conversion seen
-- ARGV[21] the conversion id the caller saw, or ''
-- ARGV[22] the click id
-- ARGV[23] '1': queue the affiliate postback; '0': only destinations
-- ARGV[24 .. 23+2D] the D destinations that fire for the new status, each
--          as two arguments: its id and its platform (ga4, meta, tiktok,
--          webhook); a destination's delivery id is the affiliate
--          postback's id, '.', and the destination id

-- Every status the conversion has had is appended to its history 'h'
-- (`<code><unix seconds>`, space-separated), in the step that moves it.
--
-- A conversion created approved or pending, or moved to a new status, gets
-- its deliveries in the same step: no credit without its postback, no
-- postback without its credit. One created rejected (by a rule or by the
-- advertiser) gets none. The context is kept with the conversion ('j'), so
-- a status change after the click has expired still carries the subs.
--
-- Returns one string, the fields joined by NUL:
--   outcome, status, payout, revenue, conversion_id, day, offer, aff, previous, reason
-- and for 'updated' four more, for the report counters the store moves
-- after it (store/report.rs): the payout and revenue before the move, the
-- creation time, and the kept context (last: it holds NULs itself).
-- with outcome one of created, duplicate, updated, or just 'missing' (see
-- ARGV[15]), 'retry' (the
-- conversion's day moved: look up again) or 'too_large' (a money counter
-- would pass 2^63 - 1 micro-units: nothing was written). One
-- string rather than an array of ten: clickback's Redis client spends more
-- instructions per reply value than on the bytes in it. No field can hold
-- NUL: ids and amounts have fixed alphabets, reasons are fixed words.
--
-- Money stays a decimal string here: Lua numbers are doubles and would lose
-- micro-units above 2^53, so the script never does arithmetic on amounts.
-- The status table is ConversionStatus::can_move_to in src/domain/conversion.rs.

-- Moves one conversion's counts into (or, with undo, out of) a counter hash,
-- all or none. HINCRBY refuses to take a counter past 2^63 - 1, and Redis
-- never rolls a script back: so the money moves first, each HINCRBY through
-- pcall, and on a refusal the money already added is taken back and false
-- is answered before anything else is written. Taking counts out cannot
-- fail. Every redis.call costs Redis about twice the bare command (the Lua
-- conversions), so an amount of 0 moves nothing and costs nothing: a
-- missing counter field reads as 0. No closures inside: Lua would build
-- them anew on every call.
local function count(stats, prefix, status, payout, revenue, undo)
  local f1, a1, f2, a2, n
  if status == 'a' then
    f1, a1, f2, a2, n = 'py', payout, 'rv', revenue, 'cv'
  elseif status == 'p' then
    f1, a1, n = 'pp', payout, 'pd'
  else
    n = 'rj'
  end
  if undo then
    if a1 and a1 ~= '0' then redis.call('HINCRBY', stats, prefix .. f1, '-' .. a1) end
    if a2 and a2 ~= '0' then redis.call('HINCRBY', stats, prefix .. f2, '-' .. a2) end
    redis.call('HINCRBY', stats, prefix .. n, -1)
    return true
  end
  if a1 and a1 ~= '0' then
    if type(redis.pcall('HINCRBY', stats, prefix .. f1, a1)) == 'table' then
      return false
    end
  end
  if a2 and a2 ~= '0' then
    if type(redis.pcall('HINCRBY', stats, prefix .. f2, a2)) == 'table' then
      if a1 ~= '0' then redis.call('HINCRBY', stats, prefix .. f1, '-' .. a1) end
      return false
    end
  end
  redis.call('HINCRBY', stats, prefix .. n, 1)
  return true
end

-- Queues the delivery `did` (record key `key`) of conversion `cid` at
-- `status` with `payout` and `revenue`, for the click's offer `offer` and
-- affiliate `aff`, to destination `dest` of platform `kind` ('' for the
-- affiliate's postback); the conversion was created at `created` (unix
-- seconds).
local function deliver(key, did, cid, status, payout, revenue, offer, aff, context, created, dest, kind)
  redis.call('HSET', key, 'c', cid, 'k', ARGV[22], 'o', offer, 'a', aff, 's', status,
    'p', payout, 'rv', revenue, 'm', ARGV[16], 'j', context, 'st', 'p', 't', ARGV[17],
    'n', 0, 'r', 0, 'na', ARGV[17], 'ct', created)
  if dest ~= '' then
    redis.call('HSET', key, 'g', dest, 'gk', kind)
  end
  redis.call('EXPIRE', key, ARGV[18])
  redis.call('ZADD', KEYS[8], ARGV[17], did)
  redis.call('ZADD', KEYS[9], ARGV[17], did)
  if dest == '' then
    redis.call('ZADD', KEYS[10], ARGV[17], did)
    redis.call('EXPIRE', KEYS[10], ARGV[18])
  end
  redis.call('ZADD', KEYS[11], ARGV[17], did)
  redis.call('EXPIRE', KEYS[11], ARGV[18])
end

-- Queues every delivery of the change: the affiliate postback when asked
-- for, and one per destination. `moved` picks the records of the
-- conversion seen (a status change) over those of a new one.
local function deliver_all(moved, cid, status, payout, revenue, offer, aff, context, created)
  local did = moved and ARGV[20] or ARGV[19]
  if ARGV[23] == '1' then
    deliver(moved and KEYS[7] or KEYS[6], did, cid, status, payout, revenue, offer, aff,
      context, created, '', '')
  end
  local d = (#ARGV - 23) / 2
  for i = 1, d do
    local dest = ARGV[22 + 2 * i]
    deliver(KEYS[11 + (moved and d or 0) + i], did .. '.' .. dest, cid, status, payout,
      revenue, offer, aff, context, created, dest, ARGV[23 + 2 * i])
  end
end

local cur = redis.call('HMGET', KEYS[1], 's', 'p', 'r', 'd', 'o', 'a', 'id', 'j', 'h', 't')
local new = ARGV[1]
-- Whether to queue deliveries.
local order = ARGV[19] ~= nil

if not cur[1] then
  if ARGV[15] == '1' then
    return 'missing'
  end
  local payout = ARGV[2] ~= '' and ARGV[2] or '0'
  local revenue = ARGV[3] ~= '' and ARGV[3] or '0'
  local prefix = ARGV[7] .. '|' .. ARGV[8] .. '|'
  if not count(KEYS[2], prefix, new, payout, revenue, false) then
    return 'too_large'
  end
  redis.call('HSET', KEYS[1], 's', new, 'p', payout, 'r', revenue, 'id', ARGV[4],
    'd', ARGV[5], 'o', ARGV[7], 'a', ARGV[8], 't', ARGV[10], 'x', ARGV[11],
    'h', new .. ARGV[10])
  redis.call('EXPIRE', KEYS[1], ARGV[9])
  if ARGV[12] ~= '' then
    redis.call('HSET', KEYS[1], 'j', ARGV[12])
  end
  if order and new ~= 'r' then
    deliver_all(false, ARGV[4], new, payout, revenue, ARGV[7], ARGV[8], ARGV[12], ARGV[10])
  end
  redis.call('ZADD', KEYS[4], ARGV[10], ARGV[4])
  redis.call('HSET', KEYS[5], ARGV[4], ARGV[13])
  local old = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[14], 'LIMIT', 0, 8)
  if #old > 0 then
    redis.call('ZREM', KEYS[4], unpack(old))
    redis.call('HDEL', KEYS[5], unpack(old))
  end
  -- Just written: answered from the arguments, not read back.
  return table.concat({'created', new, payout, revenue, ARGV[4], ARGV[5], ARGV[7], ARGV[8], '', ARGV[11]}, '\0')
end

-- The stored conversion, as the answer for a duplicate or an update.
local function reply(outcome, previous, moved)
  local r = redis.call('HMGET', KEYS[1], 's', 'p', 'r', 'id', 'd', 'o', 'a', 'x')
  for i = 1, 8 do r[i] = r[i] or '' end
  local fields = {outcome, r[1], r[2], r[3], r[4], r[5], r[6], r[7], previous or '', r[8]}
  if moved then fields[11] = moved end
  return table.concat(fields, '\0')
end

local old = cur[1]
local moves = (old == 'p' and (new == 'a' or new == 'r')) or (old == 'a' and new == 'r')
if not moves then
  return reply('duplicate')
end

-- The delivery key was built from the conversion the caller saw: another
-- one standing here now (it expired and was created anew) needs a fresh look.
if order and cur[7] ~= ARGV[21] then
  return 'retry'
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
count(stats, prefix, old, cur[2], cur[3], true)
if not count(stats, prefix, new, payout, revenue, false) then
  -- Put the old counts back: they were there a moment ago, so they fit.
  count(stats, prefix, old, cur[2], cur[3], false)
  return 'too_large'
end
redis.call('HSET', KEYS[1], 's', new, 'p', payout, 'r', revenue,
  'h', (cur[9] and (cur[9] .. ' ') or '') .. new .. ARGV[10])
if order then
  deliver_all(true, cur[7], new, payout, revenue, cur[5], cur[6], cur[8] or ARGV[12],
    cur[10] or ARGV[10])
end
return reply('updated', old,
  table.concat({cur[2] or '', cur[3] or '', cur[10] or '', cur[8] or ''}, '\0'))
