-- profile.lua: add a run of ONE user's behaviour events to the user's
-- profile atomically, each event at most once (by app|event_id), and return
-- the profile, the decision remembered for the run's trigger and the top N
-- kept for lookups. A constant dozen commands whatever the run's length.
--
-- KEYS[1] profile   hash: entry -> "<weight>|<unix ms of the latest event in it>"
-- KEYS[2] seen      zset: app|event_id -> unix ms when first added
-- KEYS[3] decisions hash: app|event_id of a trigger -> its decision (top.lua)
-- KEYS[4] fence     hash: topic/partition -> highest epoch seen
-- KEYS[5] top       hash: sig, at, set (top.lua)
-- ARGV[1] fence field  ARGV[2] epoch (0 = fencing off)  ARGV[3] now (unix ms)
-- ARGV[4] half-life (ms)  ARGV[5] dedupe window (ms)  ARGV[6] profile TTL (ms)
-- ARGV[7] max profile entries  ARGV[8] max event ids remembered
-- ARGV[9] the trigger (app|event_id of the run's last event, or "")
-- ARGV[10] n, the number of events; then per event:
--   app|event_id, occurred (unix ms), weight, k, then k entry names
--
-- An entry holds the sum of its events' weights decayed to its time t:
-- adding w at time te makes it v*2^(-(te-t)/h) + w at te when te >= t, and
-- v + w*2^(-(t-te)/h) at t otherwise, so the order events arrive in does
-- not matter.
--
-- Returns {"fenced"} if a newer owner of the partition has written, else
-- {"ok", remembered decision of the trigger or "", flags, kept sig or "",
-- kept at or "", e1, v1, e2, v2, ...} where flags has one character per
-- event, "n" (added) or "d" (a duplicate, added before), followed by the
-- whole profile.
local epoch = tonumber(ARGV[2])
if epoch > 0 then
  local seen = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0')
  if epoch < seen then
    return {'fenced'}
  end
  if epoch > seen then
    redis.call('HSET', KEYS[4], ARGV[1], epoch)
  end
end

local now = tonumber(ARGV[3])
local half = tonumber(ARGV[4])
local window = tonumber(ARGV[5])

local function forget(ids)
  for i = 1, #ids, 1000 do
    redis.call('HDEL', KEYS[3], unpack(ids, i, math.min(i + 999, #ids)))
  end
end

local function parse(cur)
  local sep = string.find(cur, '|', 1, true)
  return tonumber(string.sub(cur, 1, sep - 1)), tonumber(string.sub(cur, sep + 1))
end

-- Event ids (and decisions) older than the dedupe window are forgotten.
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if oldest[2] and tonumber(oldest[2]) < now - window then
  local cutoff = '(' .. string.format('%.0f', now - window)
  forget(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', cutoff))
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', cutoff)
end

local n = tonumber(ARGV[10])
local events, ids = {}, {}
local a = 11
for e = 1, n do
  local k = tonumber(ARGV[a + 3])
  events[e] = {id = ARGV[a], t = tonumber(ARGV[a + 1]), w = tonumber(ARGV[a + 2]), from = a + 4, to = a + 3 + k}
  ids[e] = ARGV[a]
  a = a + 4 + k
end

local prof, size = {}, 0
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  prof[flat[i]] = flat[i + 1]
  size = size + 1
end

local flags, added, changed, inRun = {}, {}, {}, {}
local scores = {}
if n > 0 then
  scores = redis.call('ZMSCORE', KEYS[2], unpack(ids))
end
for e = 1, n do
  local ev = events[e]
  if scores[e] or inRun[ev.id] then
    flags[e] = 'd'
  else
    inRun[ev.id] = true
    added[#added + 1] = ARGV[3]
    added[#added + 1] = ev.id
    for f = ev.from, ev.to do
      local name = ARGV[f]
      local cur = prof[name]
      local v, t = ev.w, ev.t
      if cur then
        local cv, ct = parse(cur)
        if ev.t >= ct then
          v = cv * math.pow(2, -(ev.t - ct) / half) + ev.w
        else
          v, t = cv + ev.w * math.pow(2, -(ct - ev.t) / half), ct
        end
      else
        size = size + 1
      end
      prof[name] = string.format('%.17g', v) .. '|' .. string.format('%.0f', t)
      changed[name] = true
    end
    flags[e] = 'n'
  end
end

if #added > 0 then
  redis.call('ZADD', KEYS[2], unpack(added))
  -- The oldest event ids beyond the maximum are forgotten.
  local maxSeen = tonumber(ARGV[8])
  local card = redis.call('ZCARD', KEYS[2])
  if card > maxSeen then
    forget(redis.call('ZRANGE', KEYS[2], 0, card - maxSeen - 1))
    redis.call('ZREMRANGEBYRANK', KEYS[2], 0, card - maxSeen - 1)
  end
end

-- A profile over its maximum keeps its strongest three quarters.
local maxEntries = tonumber(ARGV[7])
if size > maxEntries then
  local entries = {}
  for name, cur in pairs(prof) do
    local cv, ct = parse(cur)
    entries[#entries + 1] = {name, cv * math.pow(2, -math.max(now - ct, 0) / half)}
  end
  table.sort(entries, function(x, y)
    if x[2] ~= y[2] then return x[2] < y[2] end
    return x[1] < y[1]
  end)
  local drop = {}
  for i = 1, #entries - math.floor(maxEntries * 3 / 4) do
    local name = entries[i][1]
    prof[name], changed[name] = nil, nil
    drop[#drop + 1] = name
  end
  for i = 1, #drop, 1000 do
    redis.call('HDEL', KEYS[1], unpack(drop, i, math.min(i + 999, #drop)))
  end
end

local set = {}
for name in pairs(changed) do
  set[#set + 1] = name
  set[#set + 1] = prof[name]
end
for i = 1, #set, 1000 do
  redis.call('HSET', KEYS[1], unpack(set, i, math.min(i + 999, #set)))
end

redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
redis.call('PEXPIRE', KEYS[4], ARGV[5])

local remembered = ''
if ARGV[9] ~= '' then
  remembered = redis.call('HGET', KEYS[3], ARGV[9]) or ''
end
local kept = redis.call('HMGET', KEYS[5], 'sig', 'at')
local out = {'ok', remembered, table.concat(flags), kept[1] or '', kept[2] or ''}
for name, cur in pairs(prof) do
  out[#out + 1] = name
  out[#out + 1] = cur
end
return out
