-- lease_renew: extend a lease, only by the owner holding it with this token.
-- KEYS[1] -> <p>:{lease:<name>}:holder
-- ARGV[1] -> "<token> <owner>"; ARGV[2] -> ttl in milliseconds
-- Returns: 1 renewed, 0 lost (expired, released or taken over).

if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
