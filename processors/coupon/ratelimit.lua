-- ratelimit.lua: take tokens from ONE token bucket (Take in ratelimit.go).
--
-- KEYS[1] the bucket (hash: t tokens, ts last refill in unix ms)
-- ARGV[1] rate (tokens per second)  ARGV[2] burst (capacity)
-- ARGV[3] now (unix ms)             ARGV[4] tokens wanted (one per claim)
--
-- The bucket starts full and refills at rate up to burst. Returns how many
-- of the wanted tokens were taken: the first that many claims pass, in
-- order. The bucket expires once it would be full again (at most 30 days).
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local now, want = tonumber(ARGV[3]), tonumber(ARGV[4])
local v = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens, last = burst, now
if v[1] then
  tokens, last = tonumber(v[1]), tonumber(v[2])
end
if now > last then
  tokens = math.min(burst, tokens + (now - last) * rate / 1000)
  last = now
end
local got = math.min(want, math.floor(tokens))
if got < 0 then
  got = 0
end
tokens = tokens - got
redis.call('HSET', KEYS[1], 't', string.format('%.6f', tokens), 'ts', string.format('%d', last))
redis.call('PEXPIRE', KEYS[1], math.min(math.ceil((burst - tokens) * 1000 / rate) + 1000, 2592000000))
return got
