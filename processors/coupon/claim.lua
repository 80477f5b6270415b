-- claim.lua: decide a run of coupon claims for ONE batch atomically, in order.
--
-- KEYS[1] granted key   (grants of the batch so far)
-- KEYS[2] fence key     (hash: topic/partition -> highest epoch seen)
-- KEYS[2+2i-1], KEYS[2+2i]  decision key and user key of claim i (1-based)
-- ARGV[1] fence field   ARGV[2] epoch (0 = fencing off)
-- ARGV[3] total stock   ARGV[4] per-user limit
-- ARGV[5] now (unix ms) ARGV[6] decision TTL (s)  ARGV[7] user key expiry (unix s)
-- ARGV[7+i] precheck reason of claim i ("" = passed)
--
-- Returns {"fenced"} if a newer owner of the partition has written, else
-- {"ok", kind1, decision1, kind2, decision2, ...} where kind is "new" or
-- "dup" (remembered from an earlier delivery) and a decision is
-- "g|<seq>|<ms>" (granted, the seq-th coupon of the stock) or
-- "r|<reason>|<ms>".
local epoch = tonumber(ARGV[2])
if epoch > 0 then
  local seen = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
  if epoch < seen then
    return {'fenced'}
  end
  if epoch > seen then
    redis.call('HSET', KEYS[2], ARGV[1], epoch)
  end
end

local total = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local granted = nil -- read lazily: runs of rejected claims never need it
local out = {'ok'}
local n = (#KEYS - 2) / 2
for i = 1, n do
  local dkey, ukey = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  local remembered = redis.call('GET', dkey)
  if remembered then
    out[#out + 1] = 'dup'
    out[#out + 1] = remembered
  else
    local reason = ARGV[7 + i]
    if reason == '' then
      if granted == nil then
        granted = tonumber(redis.call('GET', KEYS[1]) or '0')
      end
      local held = tonumber(redis.call('GET', ukey) or '0')
      if held >= limit then
        reason = 'user_limit_reached'
      elseif granted >= total then
        reason = 'out_of_stock'
      end
    end
    local decision
    if reason == '' then
      granted = redis.call('INCR', KEYS[1])
      redis.call('INCR', ukey)
      redis.call('EXPIREAT', ukey, ARGV[7]) -- follows a later valid_until
      decision = 'g|' .. granted .. '|' .. ARGV[5]
    else
      decision = 'r|' .. reason .. '|' .. ARGV[5]
    end
    redis.call('SET', dkey, decision, 'EX', ARGV[6])
    out[#out + 1] = 'new'
    out[#out + 1] = decision
  end
end
return out
