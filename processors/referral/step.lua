-- step.lua: decide a run of bindings and qualifications of ONE activity
-- atomically, in order (Graph in rules.go states the rule in Go).
--
-- KEYS[1] fence  (hash: topic/partition -> highest epoch seen)
-- KEYS[2] inv    (hash: invitee -> inviter)
-- KEYS[3] st     (hash: invitee -> 'b' bound, not counted | 'c' counted)
-- KEYS[4] n      (hash: inviter -> invitees counted)
-- KEYS[5] rw     (hash: inviter|threshold -> ms the reward was granted)
-- KEYS[6] d      (hash: <app>\0<event> -> remembered decision)
-- ARGV[1] fence field  ARGV[2] epoch (0 = fencing off)  ARGV[3] now (unix ms)
-- ARGV[4] expire at (unix s; 0 = never)  ARGV[5] '1' when invitees count
-- only once qualified  ARGV[6] rewards "threshold=batch;..." ascending
-- ARGV[7] max chain depth
-- then per event five values: 'b' (bind) or 'q' (qualify), decision field,
-- invitee, inviter ('' for 'q'), precheck reason ('' = passed)
--
-- Returns {"fenced"}, or {"ok", kind1, decision1, ...} where kind is "new"
-- or "dup" (remembered) and a decision is
--   r|<ms>|<reason>|<inviter holding the invitee, or ''>   refused
--   b|<ms>|<counted 0/1>|<successful>|<rewards>             bound
--   q|<ms>|<inviter>|<successful>|<rewards>                 counted
-- with <rewards> the "threshold=batch;..." reached by this event.
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
local needsQualify = ARGV[5] == '1'
local maxDepth = tonumber(ARGV[7])
local rewards = {}
for spec in string.gmatch(ARGV[6], '[^;]+') do
  local t = string.match(spec, '^(%d+)=')
  rewards[#rewards + 1] = {t = tonumber(t), spec = spec, field = t}
end

-- count makes invitee count toward inviter and grants every threshold
-- reached and not yet granted; it returns the count and the rewards.
local function count(invitee, inviter)
  redis.call('HSET', KEYS[3], invitee, 'c')
  local n = redis.call('HINCRBY', KEYS[4], inviter, 1)
  local got = {}
  for _, r in ipairs(rewards) do
    if r.t <= n and redis.call('HSETNX', KEYS[5], inviter .. '|' .. r.field, now) == 1 then
      got[#got + 1] = r.spec
    end
  end
  return n, table.concat(got, ';')
end

-- walk returns 'cycle' when inviter's chain reaches invitee, 'chain_too_deep'
-- when it is longer than maxDepth, else ''.
local function walk(invitee, inviter)
  local cur = inviter
  local steps = 0
  while true do
    if cur == invitee then
      return 'cycle'
    end
    local up = redis.call('HGET', KEYS[2], cur)
    if not up then
      return ''
    end
    if steps == maxDepth then
      return 'chain_too_deep'
    end
    steps = steps + 1
    cur = up
  end
end

local out = {'ok'}
local n = (#ARGV - 7) / 5
for i = 1, n do
  local b = 7 + (i - 1) * 5
  local kind, field, invitee, inviter, reason = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5]
  local remembered = redis.call('HGET', KEYS[6], field)
  if remembered then
    out[#out + 1] = 'dup'
    out[#out + 1] = remembered
  else
    local d
    if kind == 'b' then
      local holder = ''
      if reason == '' then
        local cur = redis.call('HGET', KEYS[2], invitee)
        if cur then
          reason, holder = 'already_bound', cur
        else
          reason = walk(invitee, inviter)
        end
      end
      if reason ~= '' then
        d = 'r|' .. now .. '|' .. reason .. '|' .. holder
      else
        redis.call('HSET', KEYS[2], invitee, inviter)
        if needsQualify then
          redis.call('HSET', KEYS[3], invitee, 'b')
          d = 'b|' .. now .. '|0|0|'
        else
          local cnt, got = count(invitee, inviter)
          d = 'b|' .. now .. '|1|' .. cnt .. '|' .. got
        end
      end
    else
      local cur = redis.call('HGET', KEYS[2], invitee)
      if reason == '' then
        if not cur then
          reason = 'not_bound'
        elseif redis.call('HGET', KEYS[3], invitee) == 'c' then
          reason = 'already_qualified'
        end
      end
      if reason ~= '' then
        d = 'r|' .. now .. '|' .. reason .. '|' .. (cur or '')
      else
        local cnt, got = count(invitee, cur)
        d = 'q|' .. now .. '|' .. cur .. '|' .. cnt .. '|' .. got
      end
    end
    redis.call('HSET', KEYS[6], field, d)
    out[#out + 1] = 'new'
    out[#out + 1] = d
  end
end
local exp = tonumber(ARGV[4])
if exp > 0 then
  for k = 1, 6 do
    redis.call('EXPIREAT', KEYS[k], exp)
  end
end
return out
