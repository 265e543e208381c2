-- lease_holder: read a lease's holder and the milliseconds it has left, in one step.
-- KEYS[1] -> <p>:{lease:<name>}:holder
-- Returns: {"<token> <owner>", pttl}, or false when nobody holds it.

local held = redis.call('GET', KEYS[1])
if not held then return false end
return {held, redis.call('PTTL', KEYS[1])}
