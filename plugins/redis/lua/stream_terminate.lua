-- stream_terminate: stop delivering entries, ever, keeping a copy in the subject's
-- dead-letter stream (the newest 10,000) with the reason.
-- KEYS[1] -> <p>:{<shard>}:stream:<subject>; KEYS[2] -> <p>:{<shard>}:dead:<subject>
-- ARGV[1] -> group; ARGV[2] -> reason; ARGV[3] -> now;
-- ARGV[4..] -> per entry, two values: its id and the task id it names ('' for none)
-- Returns: the number of entries terminated.

local done = 0
for i = 4, #ARGV - 1, 2 do
  done = done + terminate_entry(KEYS[1], KEYS[2], ARGV[1], ARGV[i], ARGV[i + 1], ARGV[2], ARGV[3])
end
return done
