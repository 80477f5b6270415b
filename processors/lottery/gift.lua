-- gift.lua: decide a run of gift sends of ONE gift-exchange activity
-- atomically, in order.
--
-- KEYS[1] gm     set of active members
-- KEYS[2] gu     set of members who have not sent
-- KEYS[3] gr     set of members who have not received
-- KEYS[4] gs     hash sender -> receiver
-- KEYS[5] gv     hash receiver -> sender
-- KEYS[6] gd     hash "<app>\0<event>" -> remembered decision
-- KEYS[7] fence  hash topic/partition -> highest epoch seen
-- ARGV[1] fence field   ARGV[2] epoch (0 = fencing off)
-- ARGV[3] now (unix ms) ARGV[4] expiry of the keys (unix s, 0 = none)
-- ARGV[5+3i], ARGV[6+3i], ARGV[7+3i]  decision field, sender and precheck
--   reason ("" = passed) of send i (0-based)
--
-- Returns {"fenced"} if a newer owner of the partition has written, else
-- {"ok", kind1, decision1, ...} where kind is "new" or "dup" (remembered
-- from an earlier delivery) and a decision is "s|<ms>|<receiver>" (matched)
-- or "r|<ms>|<reason>" (rejected).
--
-- Invariant: |gu| == |gr|. Members join both sets together, leave both
-- together (gift_member.lua only removes a member who is in both), and a
-- match removes the sender from gu and the receiver from gr.
local gm, gu, gr, gs, gv, gd, fence = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]

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

-- pick returns the receiver for sender (who has not sent), or false.
local function pick(sender)
  -- Anti-dead-end rule. A dead end is a last unsent member S whose only
  -- unreceived member is S itself: gu == gr == {S} (with |gu| == |gr|, the
  -- only way gr \ {S} is empty for a sender S in gu). It arises from the
  -- step before, gu == {X, S}, when X takes some R != S although S is still
  -- in gr. So when two members are left unsent and the other one (T) has
  -- not received, the sender must give to T; then T is left with the one
  -- remaining unreceived member, who is not T. Reading gu is O(1) here: it
  -- has two members.
  if redis.call('SCARD', gu) == 2 then
    local two = redis.call('SMEMBERS', gu)
    local other = two[1]
    if other == sender then
      other = two[2]
    end
    if redis.call('SISMEMBER', gr, other) == 1 then
      return other
    end
  end
  -- Otherwise uniformly at random among gr \ {sender}, in O(1): take the
  -- sender out of gr for the draw and put them back (nobody sees the gap;
  -- math.random is not usable: Redis seeds it the same for every call).
  if redis.call('SISMEMBER', gr, sender) == 1 then
    redis.call('SREM', gr, sender)
    local r = redis.call('SRANDMEMBER', gr)
    redis.call('SADD', gr, sender)
    return r
  end
  return redis.call('SRANDMEMBER', gr)
end

local out = {'ok'}
local decided = false
local n = (#ARGV - 4) / 3
for i = 0, n - 1 do
  local field, sender, reason = ARGV[5 + 3 * i], ARGV[6 + 3 * i], ARGV[7 + 3 * i]
  local remembered = redis.call('HGET', gd, field)
  if remembered then
    out[#out + 1] = 'dup'
    out[#out + 1] = remembered
  else
    local receiver = false
    if reason == '' then
      if redis.call('SISMEMBER', gm, sender) == 0 then
        reason = 'not_a_member' -- schemas.RejectNotAMember
      elseif redis.call('SISMEMBER', gu, sender) == 0 then
        reason = 'already_sent' -- schemas.RejectAlreadySent
      else
        receiver = pick(sender)
        if not receiver then
          reason = 'no_receiver_left' -- schemas.RejectNoReceiverLeft
        end
      end
    end
    local decision
    if receiver then
      redis.call('SREM', gu, sender)
      redis.call('SREM', gr, receiver)
      redis.call('HSET', gs, sender, receiver)
      redis.call('HSET', gv, receiver, sender)
      decision = 's|' .. now .. '|' .. receiver
    else
      decision = 'r|' .. now .. '|' .. reason
    end
    redis.call('HSET', gd, field, decision)
    decided = true
    out[#out + 1] = 'new'
    out[#out + 1] = decision
  end
end

if expireAt > 0 then
  if decided then
    for _, k in ipairs({gu, gr, gs, gv, gd}) do
      redis.call('EXPIREAT', k, expireAt)
    end
  end
  if fenceWritten then
    redis.call('EXPIREAT', fence, expireAt)
  end
end
return out
