-- top.lua: decide, once per trigger, whether ONE user's newly ranked top N
-- replaces the one kept for lookups and is emitted.
--
-- KEYS[1] top       hash: sig (batch ids in rank order), at (unix ms it was
--                   emitted), set (its JSON, what lookups read)
-- KEYS[2] decisions hash: app|event_id of a trigger -> its decision
-- KEYS[3] fence     hash: topic/partition -> highest epoch seen
-- ARGV[1] fence field  ARGV[2] epoch (0 = fencing off)  ARGV[3] now (unix ms)
-- ARGV[4] min interval between emissions (ms)  ARGV[5] decision TTL (ms)
-- ARGV[6] top TTL (ms)  ARGV[7] the trigger (app|event_id)
-- ARGV[8] the new top N's signature  ARGV[9] its JSON
--
-- The decision is "same" (the top N did not change: nothing to emit),
-- "held" (it changed, but the last emission is more recent than the min
-- interval: the previous one stays) or "emit|<JSON>" (it replaces the kept
-- one and is emitted). It is remembered with the trigger, so a redelivered
-- trigger gets the same decision.
--
-- Returns {"fenced"} or {"new" | "dup", decision}.
local epoch = tonumber(ARGV[2])
if epoch > 0 then
  local seen = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
  if epoch < seen then
    return {'fenced'}
  end
  if epoch > seen then
    redis.call('HSET', KEYS[3], ARGV[1], epoch)
  end
end

local remembered = redis.call('HGET', KEYS[2], ARGV[7])
if remembered then
  return {'dup', remembered}
end

local cur = redis.call('HMGET', KEYS[1], 'sig', 'at')
local decision
if cur[1] == ARGV[8] or (not cur[1] and ARGV[8] == '') then
  decision = 'same'
elseif cur[2] and tonumber(ARGV[3]) - tonumber(cur[2]) < tonumber(ARGV[4]) then
  decision = 'held'
else
  redis.call('HSET', KEYS[1], 'sig', ARGV[8], 'at', ARGV[3], 'set', ARGV[9])
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  decision = 'emit|' .. ARGV[9]
end
redis.call('HSET', KEYS[2], ARGV[7], decision)
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
return {'new', decision}
