-- mark.lua: record what became of a shard's reserved users.
--
-- KEYS[1]     the campaign hash
-- KEYS[2..]   the reserved users' hashes (as in reserve.lua)
-- ARGV[1] campaign id  ARGV[2] shard seq  ARGV[3] epoch  ARGV[4] now (ms)
-- ARGV[5] keep (ms)    ARGV[6] done: 1 when the shard is complete
-- ARGV[7..] one outcome per user: s sent, f failed for good, x released
--           (to be tried again)
--
-- A user is marked only while the reservation is still this shard's at
-- this epoch or an older one (a newer owner may have taken it over).
-- Returns {sent, failed, released, lost}: lost counts reservations that
-- were no longer ours (the shard is then not done: their owner finishes it).
local campaign, seq, epoch = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now, keep, done = ARGV[4], tonumber(ARGV[5]), ARGV[6]
local sent, failed, released, lost = 0, 0, 0, 0
for i = 2, #KEYS do
  local key, outcome = KEYS[i], ARGV[5 + i]
  local cur = redis.call('HGET', key, campaign)
  local s, e
  if cur then
    s, e = string.match(cur, '^r|([^|]*)|([^|]*)|')
  end
  if s ~= seq or (tonumber(e) or 0) > epoch then
    lost = lost + 1
  elseif outcome == 's' then
    -- The key's expiry was set by the reservation, a lease ago at most.
    redis.call('HSET', key, campaign, 's|' .. now)
    sent = sent + 1
  elseif outcome == 'f' then
    redis.call('HSET', key, campaign, 'f|' .. now)
    failed = failed + 1
  else
    redis.call('HDEL', key, campaign)
    released = released + 1
  end
end
if sent > 0 then redis.call('HINCRBY', KEYS[1], 'sent', sent) end
if failed > 0 then redis.call('HINCRBY', KEYS[1], 'failed', failed) end
if done == '1' and lost == 0 and redis.call('HSETNX', KEYS[1], 'd:' .. seq, now) == 1 then
  redis.call('HINCRBY', KEYS[1], 'shards_done', 1)
end
redis.call('PEXPIRE', KEYS[1], keep)
return {sent, failed, released, lost}
