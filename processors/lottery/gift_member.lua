-- gift_member.lua: apply a run of member changes (add, update, remove) of
-- ONE gift-exchange activity atomically, in order.
--
-- KEYS[1] gm     set of active members
-- KEYS[2] gu     set of members who have not sent
-- KEYS[3] gr     set of members who have not received
-- KEYS[4] gs     hash sender -> receiver
-- KEYS[5] gv     hash receiver -> sender
-- KEYS[6] gi     hash member -> info: netstrings status, name, note, import_id
-- KEYS[7] gd     hash "<app>\0<event>" -> remembered decision
-- KEYS[8] fence  hash topic/partition -> highest epoch seen
-- ARGV[1] fence field   ARGV[2] epoch (0 = fencing off)
-- ARGV[3] now (unix ms) ARGV[4] expiry of the keys (unix s, 0 = none)
-- ARGV[5+6i] .. ARGV[10+6i]  decision field, user, action, name, note,
--   import_id of change i (0-based)
--
-- A netstring is "<decimal length>:<bytes>", so names and notes may hold
-- any byte. Returns {"fenced"} or {"ok", kind1, decision1, ...} where kind
-- is "new" or "dup" and a decision is
-- "m|<ms>|" .. netstrings status, name, note, import_id, refusal reason.
--
-- Keeps |gu| == |gr| (see gift.lua): a member joins gm, gu and gr together
-- and leaves them together, and only while in both gu and gr.
local gm, gu, gr, gs, gv, gi, gd, fence = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]

local epoch = tonumber(ARGV[2])
local fenceWritten = false
if epoch > 0 then
  local seen = tonumber(redis.call('HGET', fence, ARGV[1]) or '0')
  if epoch < seen then
    return {'fenced'}
  end
  if epoch > seen then
    redis.call('HSET', fence, ARGV[1], epoch)
    fenceWritten = true
  end
end
local now, expireAt = ARGV[3], tonumber(ARGV[4])

local function ns(s)
  return #s .. ':' .. s
end

-- info returns the stored record of user as {status, name, note, import_id},
-- or nil when the user was never a member.
local function info(user)
  local v = redis.call('HGET', gi, user)
  if not v then
    return nil
  end
  local t, pos = {}, 1
  for i = 1, 4 do
    local colon = string.find(v, ':', pos, true)
    local len = colon and tonumber(string.sub(v, pos, colon - 1))
    if not len or colon + len > #v then
      return redis.error_reply('gift_member: malformed info of member ' .. user)
    end
    t[i] = string.sub(v, colon + 1, colon + len)
    pos = colon + len + 1
  end
  return t
end

local out = {'ok'}
local decided = false
local n = (#ARGV - 4) / 6
for i = 0, n - 1 do
  local b = 5 + 6 * i
  local field, user, action = ARGV[b], ARGV[b + 1], ARGV[b + 2]
  local name, note, importID = ARGV[b + 3], ARGV[b + 4], ARGV[b + 5]
  local remembered = redis.call('HGET', gd, field)
  if remembered then
    out[#out + 1] = 'dup'
    out[#out + 1] = remembered
  else
    local rec = info(user)
    if rec and rec.err then
      return rec
    end
    local active = redis.call('SISMEMBER', gm, user) == 1
    local reason = ''
    if action == 'add' or action == 'update' then
      if not active or action == 'update' then
        -- The import id is kept unless a new one is given.
        if importID == '' and rec then
          importID = rec[4]
        end
        rec = {'active', name, note, importID}
        if not active then
          -- A (re)joining member has neither sent nor received (a member who
          -- had was never removed), so joining gu and gr together keeps
          -- |gu| == |gr|.
          redis.call('SADD', gm, user)
          redis.call('SADD', gu, user)
          redis.call('SADD', gr, user)
        end
        redis.call('HSET', gi, user, ns(rec[1]) .. ns(rec[2]) .. ns(rec[3]) .. ns(rec[4]))
      end
      -- An add of an active member keeps the stored record: imports are
      -- idempotent and never undo an edit.
    elseif action == 'remove' then
      if not active then
        reason = 'not_a_member' -- schemas.RejectNotAMember
      elseif redis.call('HEXISTS', gs, user) == 1 or redis.call('HEXISTS', gv, user) == 1 then
        reason = 'member_locked'
      else
        -- The member is in gu and gr. Removing them from a gu == gr of two
        -- would leave the other one, T, as a dead end (gu == gr == {T}) once
        -- the exchange has started around them (more members than these
        -- two): refuse, the pair will give to each other.
        if redis.call('SCARD', gu) == 2 and redis.call('SCARD', gm) > 2 then
          local two = redis.call('SMEMBERS', gu)
          local other = two[1]
          if other == user then
            other = two[2]
          end
          if redis.call('SISMEMBER', gr, other) == 1 then
            reason = 'would_strand'
          end
        end
        if reason == '' then
          redis.call('SREM', gm, user)
          redis.call('SREM', gu, user)
          redis.call('SREM', gr, user)
          rec = rec or {'', '', '', ''}
          rec[1] = 'removed'
          redis.call('HSET', gi, user, ns(rec[1]) .. ns(rec[2]) .. ns(rec[3]) .. ns(rec[4]))
        end
      end
    else
      reason = 'unknown_action'
    end
    rec = rec or {active and 'active' or 'removed', '', '', ''}
    local decision = 'm|' .. now .. '|' .. ns(rec[1]) .. ns(rec[2]) .. ns(rec[3]) .. ns(rec[4]) .. ns(reason)
    redis.call('HSET', gd, field, decision)
    decided = true
    out[#out + 1] = 'new'
    out[#out + 1] = decision
  end
end

if expireAt > 0 then
  if decided then
    for _, k in ipairs({gm, gu, gr, gi, gd}) do
      redis.call('EXPIREAT', k, expireAt)
    end
  end
  if fenceWritten then
    redis.call('EXPIREAT', fence, expireAt)
  end
end
return out
