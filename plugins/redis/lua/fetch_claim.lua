-- fetch_claim: take up to n entries from a consumer's streams and claim their tasks, in
-- one step: first entries whose lease ran out (XPENDING IDLE + XCLAIM, when asked), then
-- new ones (XREADGROUP, never blocking). Each task is claimed as claim does; an entry of
-- a task not claimable is acked, one naming no stored task is terminated.
-- KEYS[1..7] -> due, ready, running, finished, dead, order, counts (see _common.lua)
-- KEYS[8] -> the task key prefix <p>:{<shard>}:task: (ids come from the streams)
-- KEYS[9..8+2m] -> each stream <p>:{<shard>}:stream:<subject> and its dead-letter
--                  stream <p>:{<shard>}:dead:<subject>, in pairs
-- ARGV[1] -> group; ARGV[2] -> consumer; ARGV[3] -> owner; ARGV[4] -> now;
-- ARGV[5] -> lease_until; ARGV[6] -> most entries to take (n);
-- ARGV[7] -> an entry's lease in ms (idle time after which it is taken over), 0 for no
--            takeover; ARGV[8] -> the stream to start at (1..m), so each gets its turn
-- Returns: {entries taken, {index of each stream whose group is gone}, {per claimed
-- entry: stream index, entry id, deliveries, task id, then its fields t, p, a, ra, sub,
-- rk, e, c}}
-- (the rest of the record is the claim's own: RUNNING, owner, lease_until, now).

local group, consumer, idle = ARGV[1], ARGV[2], ARGV[7]
local want, start, m = tonumber(ARGV[6]), tonumber(ARGV[8]), (#KEYS - 8) / 2
local taken, gone, lost = {}, {}, {}

local function take(j, entry, fields, deliveries)
  local id = entry_task(fields)
  taken[#taken + 1] = {j, entry, id, deliveries, KEYS[8] .. id}
  want = want - 1
end

local function failed(j, reply)
  if type(reply) == 'table' and reply.err then
    gone[#gone + 1] = j; lost[j] = true
    return true
  end
  return false
end

local function take_over(j, stream)
  local expired = redis.pcall('XPENDING', stream, group, 'IDLE', idle, '-', '+', want)
  if failed(j, expired) then return end
  for _, item in ipairs(expired) do
    local claimed = redis.call('XCLAIM', stream, group, consumer, idle, item[1])
    if claimed[1] then take(j, item[1], claimed[1][2], item[4] + 1) end
  end
end

local function read_new(j, stream)
  local reply = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', want,
    'STREAMS', stream, '>')
  if not reply or failed(j, reply) then return end
  for _, entry in ipairs(reply[1][2]) do take(j, entry[1], entry[2], 1) end
end

for pass = 1, 2 do
  if pass == 2 or idle ~= '0' then
    for step = 0, m - 1 do
      local j = (start - 1 + step) % m + 1
      if want <= 0 then break end
      if not lost[j] then
        if pass == 1 then take_over(j, KEYS[7 + 2 * j]) else read_new(j, KEYS[7 + 2 * j]) end
      end
    end
  end
end

local out = {}
claim_taken(taken, 9, group, ARGV[3], ARGV[4], ARGV[5], out)
return commit({#taken, gone, out})
