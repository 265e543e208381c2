-- limiter_acquire: take cost tokens from one token bucket, timed by the server's clock
-- (ADR 0042), with the arithmetic of atp.plugins.memory.limiter.refill.
-- KEYS[1] -> <p>:{limit:<key>}  HASH  t: tokens left, s: the server time (seconds) they
--            were counted at; expires once the bucket would be full again (idle).
-- ARGV[1] -> rate, tokens per second (> 0); ARGV[2] -> burst (>= 1); ARGV[3] -> cost (>= 1)
-- Returns: the seconds to wait, as a string: "0" when the tokens were taken, "inf" when
-- cost > burst (never), else the time until cost tokens are there (nothing taken).

local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000

local function fmt(x) return string.format('%.17g', x) end

local stored = redis.call('HMGET', KEYS[1], 't', 's')
local tokens, stamp = tonumber(stored[1]), tonumber(stored[2])
if not tokens or not stamp then tokens, stamp = burst, now end
local level = math.min(burst, tokens + math.max(now - stamp, 0) * rate)

local wait = '0'
if level >= cost then
  level = level - cost
elseif cost > burst then
  wait = 'inf'
else
  wait = fmt((cost - level) / rate)
end
-- A stamp never goes back: a failed-over replica's clock behind ours grants nothing extra.
redis.call('HSET', KEYS[1], 't', fmt(level), 's', fmt(math.max(now, stamp)))
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil((burst - level) / rate * 1000) + 1000))
return wait
