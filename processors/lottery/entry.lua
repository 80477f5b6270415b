-- entry.lua: decide a run of participations of ONE activity atomically, in
-- order (DecideEntry in rules.go states the rule in Go).
--
-- KEYS[1] fence   (hash: topic/partition -> highest epoch seen)
-- KEYS[2] state   (hash: closed, drawn, published)
-- KEYS[3] users   (set of participants: one ticket each)
-- KEYS[4] joins   (hash: user -> accepted participations; only when limit > 1)
-- KEYS[5] events  (hash: <app>\0<event> -> remembered decision)
-- KEYS[6] stock   (hash: tier -> prizes left; instant-win)
-- KEYS[7] won     (hash: user -> tier won; instant-win)
-- ARGV[1] fence field  ARGV[2] epoch (0 = fencing off)  ARGV[3] now (unix ms)
-- ARGV[4] expire at (unix s)  ARGV[5] kind  ARGV[6] per-user limit
-- ARGV[7] instant-win tiers "tier:ppm:stock,..." in order ("" otherwise)
-- then per participation four values: event field, user, precheck reason
-- ("" = passed), roll (instant-win; -1 otherwise)
--
-- Returns {"fenced"}, or {"ok", kind1, decision1, ...} where kind is "new"
-- or "dup" (remembered) and a decision is "r|<reason>|<ms>" (rejected),
-- "a|<ms>" (accepted into a draw) or "w|<ms>|<tier or empty>|<odds>"
-- (instant-win try: won the tier, or lost when empty; odds are the odds in
-- force, "tier:ppm,..." with an exhausted tier at 0).
local epoch = tonumber(ARGV[2])
if epoch > 0 then
  local seen = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
  if epoch < seen then
    return {'fenced'}
  end
  if epoch > seen then
    redis.call('HSET', KEYS[1], ARGV[1], epoch)
  end
end

local now = ARGV[3]
local kind = ARGV[5]
local limit = tonumber(ARGV[6])
local tiers, ids = {}, {}
if ARGV[7] ~= '' then
  for spec in string.gmatch(ARGV[7], '[^,]+') do
    local id, ppm, stock = string.match(spec, '^(.+):(%d+):(%d+)$')
    -- The stock is set once, from the definition in force at the first try.
    redis.call('HSETNX', KEYS[6], id, stock)
    tiers[#tiers + 1] = {id = id, ppm = tonumber(ppm)}
    ids[#ids + 1] = id
  end
end
local closed = redis.call('HEXISTS', KEYS[2], 'closed') == 1

local out = {'ok'}
local n = (#ARGV - 7) / 4
for i = 1, n do
  local b = 7 + (i - 1) * 4
  local field, user, reason, roll = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], tonumber(ARGV[b + 4])
  local remembered = redis.call('HGET', KEYS[5], field)
  if remembered then
    out[#out + 1] = 'dup'
    out[#out + 1] = remembered
  else
    if reason == '' and closed then
      reason = 'draw_closed'
    end
    if reason == '' then
      local joined
      if limit > 1 then
        joined = tonumber(redis.call('HGET', KEYS[4], user) or '0')
      else
        joined = redis.call('SISMEMBER', KEYS[3], user)
      end
      if joined >= limit then
        reason = 'limit_reached'
      end
    end
    if reason == '' and kind == 'instant_win' and redis.call('HEXISTS', KEYS[7], user) == 1 then
      reason = 'already_won'
    end
    local d
    if reason ~= '' then
      d = 'r|' .. reason .. '|' .. now
    else
      redis.call('SADD', KEYS[3], user)
      if limit > 1 then
        redis.call('HINCRBY', KEYS[4], user, 1)
      end
      if kind == 'instant_win' then
        local left = redis.call('HMGET', KEYS[6], unpack(ids))
        local odds, cum, won = {}, 0, ''
        for j, t in ipairs(tiers) do
          local ppm = t.ppm
          if tonumber(left[j] or '0') <= 0 then
            ppm = 0 -- exhausted: its share becomes no prize, openly
          end
          odds[#odds + 1] = t.id .. ':' .. ppm
          if won == '' and ppm > 0 and roll < cum + ppm then
            won = t.id
          end
          cum = cum + ppm
        end
        if won ~= '' then
          redis.call('HINCRBY', KEYS[6], won, -1)
          redis.call('HSET', KEYS[7], user, won)
        end
        d = 'w|' .. now .. '|' .. won .. '|' .. table.concat(odds, ',')
      else
        d = 'a|' .. now
      end
    end
    redis.call('HSET', KEYS[5], field, d)
    out[#out + 1] = 'new'
    out[#out + 1] = d
  end
end
local exp = ARGV[4]
for k = 2, 7 do
  redis.call('EXPIREAT', KEYS[k], exp)
end
return out
