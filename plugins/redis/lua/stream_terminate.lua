-- stream_terminate: stop delivering entries, ever, keeping a copy in the subject's
-- dead-letter stream (the newest 10,000) with the reason.
-- KEYS[1] -> <p>:{<subject>}:stream; KEYS[2] -> <p>:{<subject>}:dead
-- ARGV[1] -> group; ARGV[2] -> reason; ARGV[3] -> now; ARGV[4..] -> ids
-- Returns: the number of entries terminated.

local done = 0
for i = 4, #ARGV do
  local entry = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 then
    local envelope = ''
    if entry[1] then
      local fields = entry[1][2]
      for j = 1, #fields, 2 do
        if fields[j] == 't' then envelope = fields[j + 1] end
      end
    end
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 't', envelope, 'reason', ARGV[2],
      'group', ARGV[1], 'id', ARGV[i], 'at', ARGV[3])
    done = done + 1
  end
end
return done
