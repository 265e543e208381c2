-- stream_publish: append envelopes to one subject's stream in one call (one command to
-- encode instead of one per task), and note the subject in the registry.
-- KEYS[1] -> <p>:{<subject>}:stream; KEYS[2] -> <p>:subjects
-- ARGV[1] -> subject; ARGV[2..] -> envelope JSON of each task
-- Returns: the number of entries added.

for i = 2, #ARGV do
  redis.call('XADD', KEYS[1], '*', 't', ARGV[i])
end
redis.call('SADD', KEYS[2], ARGV[1])
return #ARGV - 1
