-- lease_release: give a lease up, only by the owner holding it with this token.
-- KEYS[1] -> <p>:{lease:<name>}:holder
-- ARGV[1] -> "<token> <owner>"
-- Returns: 1 released, 0 not ours (nothing changed).

if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
