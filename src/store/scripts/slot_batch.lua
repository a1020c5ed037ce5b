-- Run a pipeline's commands of one hash slot as one atomic step: the Redis
-- Cluster form of a pipeline (src/store/redis/slots.rs).
--
-- KEYS     every key the commands touch (the cluster routes the call by
--          them and checks that they are all here)
-- ARGV     for each command: its number of words, then the words
--
-- Returns one reply per command, in order; a command that fails answers its
-- error in its place and the others still run, as in a pipeline.

local replies = {}
local i = 1
local n = #ARGV
while i <= n do
  local words = tonumber(ARGV[i])
  replies[#replies + 1] = redis.pcall(unpack(ARGV, i + 1, i + words))
  i = i + words + 1
end
return replies
