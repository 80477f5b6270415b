-- claim.lua: decide one coupon claim atomically.
--
-- KEYS[1] decision key   (remembered decision of this event)
-- KEYS[2] granted key    (grants of the batch so far)
-- KEYS[3] user key       (grants of the batch to this user)
-- KEYS[4] fence key      (hash: topic/partition -> highest epoch seen)
-- ARGV[1] fence field    ARGV[2] epoch (0 = fencing off)
-- ARGV[3] precheck reason ("" = passed)
-- ARGV[4] total stock    ARGV[5] per-user limit
-- ARGV[6] now (unix ms)  ARGV[7] decision TTL (s)  ARGV[8] user key expiry (unix s)
--
-- Returns {kind, decision} where kind is "new", "dup" or "fenced" and the
-- decision is "g|<seq>|<ms>" (granted, seq-th coupon of the stock) or
-- "r|<reason>|<ms>".
local epoch = tonumber(ARGV[2])
if epoch > 0 then
  local seen = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0')
  if epoch < seen then
    return {'fenced', ''}
  end
  if epoch > seen then
    redis.call('HSET', KEYS[4], ARGV[1], epoch)
  end
end

local remembered = redis.call('GET', KEYS[1])
if remembered then
  return {'dup', remembered}
end

local decision
local reason = ARGV[3]
if reason == '' then
  local held = tonumber(redis.call('GET', KEYS[3]) or '0')
  local granted = tonumber(redis.call('GET', KEYS[2]) or '0')
  if held >= tonumber(ARGV[5]) then
    reason = 'user_limit_reached'
  elseif granted >= tonumber(ARGV[4]) then
    reason = 'out_of_stock'
  end
end
if reason == '' then
  local seq = redis.call('INCR', KEYS[2])
  redis.call('INCR', KEYS[3])
  redis.call('EXPIREAT', KEYS[3], ARGV[8])
  decision = 'g|' .. seq .. '|' .. ARGV[6]
else
  decision = 'r|' .. reason .. '|' .. ARGV[6]
end
redis.call('SET', KEYS[1], decision, 'EX', ARGV[7])
return {'new', decision}
