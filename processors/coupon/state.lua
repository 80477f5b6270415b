-- state.lua: operations on the coupons of ONE user, atomically, in order.
-- It implements Step (state.go) and the reminder rule ShouldRemind; every
-- key is in the user's hash slot ({<user>}).
--
-- KEYS[1] fence hash of the user (topic/partition -> highest epoch seen)
-- for operation i (1-based), three keys:
--   KEYS[3i-1] the coupon (hash)   KEYS[3i] the remembered decision (string)
--   KEYS[3i+1] the reminder key of (user, batch, day) for remind, else unused
-- ARGV[1] fence field  ARGV[2] epoch (0 = fencing off)  ARGV[3] now (unix ms)
-- ARGV[4] decision TTL (s)
-- for operation i, seven values from ARGV[4+7(i-1)+1]:
--   op, order, x1, x2, x3, x4, x5 where by op
--   grant    x1 batch, x2 from ms, x3 until ms, x4 coupon expire-at (unix s), x5 granted ms
--   lock     x1 "1" if the coupon id is another user's, x2 "1" if the batch is disabled, x3 deadline ms
--   confirm, cancel  x1 "1" if the coupon id is another user's
--   release  x1 the deadline the lock must still have (ms)
--   expire   (none)
--   remind   x1 coupon id, x2 reminder key TTL (s)
--
-- Coupon hash fields: b batch, s state, q seq, o order, d lock deadline ms
-- ("0" = none), f from ms, u until ms, g granted ms; m:<...> the
-- remembered timer decisions (m:x expire, m:r:<order>:<deadline> release).
--
-- Returns {"fenced"} if a newer owner of the partition has written, else
-- {"ok", kind1, value1, kind2, value2, ...}. kind is
--   "new" / "dup"  value is a decision (dup: remembered from an earlier call):
--                  "<a|r>|<reason>|<state>|<seq>|<decided ms>|<batch>|<from ms>|<until ms>|<deadline ms>"
--                  (the coupon after the operation; empty fields when unknown)
--   "skip"         a timer or reminder with nothing to do
--   "wait"         expire: look again at value (ms)
--   "send"         remind: send it; value is the coupon's until (ms)
local epoch = tonumber(ARGV[2])
if epoch > 0 then
  local seen = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
  if epoch < seen then
    return {'fenced'}
  end
  if epoch > seen then
    redis.call('HSET', KEYS[1], ARGV[1], epoch)
    redis.call('EXPIRE', KEYS[1], ARGV[4])
  end
end

local nowS = ARGV[3]
local now = tonumber(nowS)
local ttl = ARGV[4]

local function load(key)
  local v = redis.call('HMGET', key, 'b', 's', 'q', 'o', 'd', 'f', 'u', 'g')
  if not v[1] then
    return {known = false, b = '', s = '', q = '0', o = '', d = '0', f = '', u = '', g = ''}
  end
  return {known = true, b = v[1], s = v[2], q = v[3], o = v[4] or '', d = v[5] or '0', f = v[6], u = v[7], g = v[8] or ''}
end

local function decision(status, reason, c, at)
  return status .. '|' .. reason .. '|' .. c.s .. '|' .. c.q .. '|' .. at .. '|' .. c.b .. '|' .. c.f .. '|' .. c.u .. '|' .. c.d
end

local function save(key, c)
  redis.call('HSET', key, 's', c.s, 'q', c.q, 'o', c.o, 'd', c.d)
end

local function bump(c)
  c.q = tostring(tonumber(c.q) + 1)
end

-- reject mirrors reject() in state.go.
local function reject(c, op, order, other, disabled)
  if not c.known then
    if other == '1' then return 'not_owner' end
    return 'unknown_coupon'
  end
  if op == 'lock' then
    if c.s == 'used' then return 'already_used' end
    if c.s == 'expired' then return 'expired' end
    if c.s == 'locked' then
      if c.o == order then return 'already_locked' end
      return 'locked_by_other_order'
    end
    if now < tonumber(c.f) or now >= tonumber(c.u) then return 'expired' end
    if disabled == '1' then return 'batch_disabled' end
    return ''
  end
  if c.s == 'locked' then
    if c.o == order then return '' end
    return 'locked_by_other_order'
  end
  if c.s == 'used' then return 'already_used' end
  if c.s == 'expired' then return 'expired' end
  return 'not_locked'
end

local out = {'ok'}
local n = (#KEYS - 1) / 3
for i = 1, n do
  local ck, mk, xk = KEYS[3 * i - 1], KEYS[3 * i], KEYS[3 * i + 1]
  local a = 4 + 7 * (i - 1)
  local op, order = ARGV[a + 1], ARGV[a + 2]
  local x1, x2, x3, x4, x5 = ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
  local kind, value
  if op == 'grant' then
    local c = load(ck)
    if c.known then
      kind = 'dup'
      value = 'a||available|1|' .. c.g .. '|' .. c.b .. '|' .. c.f .. '|' .. c.u .. '|0'
    else
      redis.call('HSET', ck, 'b', x1, 's', 'available', 'q', '1', 'o', '', 'd', '0', 'f', x2, 'u', x3, 'g', x5)
      redis.call('EXPIREAT', ck, x4)
      kind = 'new'
      value = 'a||available|1|' .. x5 .. '|' .. x1 .. '|' .. x2 .. '|' .. x3 .. '|0'
    end
  elseif op == 'lock' or op == 'confirm' or op == 'cancel' then
    local remembered = redis.call('GET', mk)
    if remembered then
      kind, value = 'dup', remembered
    else
      local c = load(ck)
      local reason = reject(c, op, order, x1, x2)
      if reason == '' then
        bump(c)
        if op == 'lock' then
          c.s, c.o, c.d = 'locked', order, x3
        elseif op == 'confirm' then
          c.s, c.d = 'used', '0'
        else
          c.s, c.o, c.d = 'available', '', '0'
        end
        save(ck, c)
        value = decision('a', '', c, nowS)
      else
        value = decision('r', reason, c, nowS)
      end
      redis.call('SET', mk, value, 'EX', ttl)
      kind = 'new'
    end
  elseif op == 'release' or op == 'expire' then
    local c = load(ck)
    local memo = 'm:x'
    if op == 'release' then
      memo = 'm:r:' .. order .. ':' .. x1
    end
    local remembered = false
    if c.known then
      remembered = redis.call('HGET', ck, memo)
    end
    if remembered then
      kind, value = 'dup', remembered
    elseif op == 'release' then
      if c.known and c.s == 'locked' and c.o == order and c.d == x1 then
        bump(c)
        c.s, c.o, c.d = 'available', '', '0'
        save(ck, c)
        value = decision('a', '', c, nowS)
        redis.call('HSET', ck, memo, value)
        kind = 'new'
      else
        kind, value = 'skip', ''
      end
    else
      if not c.known or c.s == 'used' or c.s == 'expired' then
        kind, value = 'skip', ''
      elseif c.s == 'locked' then
        kind, value = 'wait', c.d
      elseif now < tonumber(c.u) then
        kind, value = 'wait', c.u
      else
        bump(c)
        c.s = 'expired'
        save(ck, c)
        value = decision('a', '', c, nowS)
        redis.call('HSET', ck, memo, value)
        kind = 'new'
      end
    end
  elseif op == 'remind' then
    local c = load(ck)
    kind, value = 'skip', ''
    if c.known and c.s == 'available' and now < tonumber(c.u) then
      if redis.call('SET', xk, x1, 'NX', 'EX', x2) or redis.call('GET', xk) == x1 then
        kind, value = 'send', c.u
      end
    end
  else
    return redis.error_reply('state.lua: unknown op ' .. tostring(op))
  end
  out[#out + 1] = kind
  out[#out + 1] = value
end
return out
