-- reserve.lua: decide, for each user of one notification shard, whether the
-- campaign may be sent to them now, and reserve those that may.
--
-- KEYS[1]     the campaign hash (<prefix>:ntf:{<campaign>}:c)
-- KEYS[2..]   one hash per user (<prefix>:ntf:u:{<user>}): field = campaign
--             id, value = one of
--               s|<ms>                          sent at <ms>
--               c|<ms>                          refused by a frequency cap
--               f|<ms>                          failed for good
--               r|<seq>|<epoch>|<until>|<ms>    reserved by shard <seq> at
--                                               fencing epoch <epoch> until
--                                               <until> (ms)
-- ARGV[1] campaign id   ARGV[2] shard seq   ARGV[3] epoch   ARGV[4] now (ms)
-- ARGV[5] lease (ms)    ARGV[6] keep (ms): how long a user's record of a
--                       campaign is kept (the dedup window)
-- ARGV[7] n caps, then n pairs of (window ms, max sends in the window)
--
-- Returns a string of one code per user: R reserved (send it), S already
-- sent, C capped, F failed for good earlier, B busy (reserved by another
-- live holder); "X" alone when the campaign was cancelled. A shard already done is decided user by user all the
-- same (all S, C or F): a shard of the same seq planned again over a
-- manual crowd that changed in between may hold other users.
-- A user's sends of other campaigns in a cap's window count against the
-- cap, and so do their live reservations (so two campaigns sent at the same
-- moment cannot both pass a cap of 1).
local campaign, seq, epoch = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now, lease, keep = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local ncaps = tonumber(ARGV[7])
local caps = {}
for i = 1, ncaps do
  caps[i] = {tonumber(ARGV[6 + 2 * i]), tonumber(ARGV[7 + 2 * i])}
end

-- when returns the ms a value was written at, and whether it holds a
-- send or a live reservation that counts against the caps.
local function parse(v)
  local kind = string.sub(v, 1, 1)
  if kind == 'r' then
    local s, e, u, t = string.match(v, '^r|([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
    return kind, tonumber(t) or 0, s, tonumber(e) or 0, tonumber(u) or 0
  end
  return kind, tonumber(string.sub(v, 3)) or 0
end

-- A cancelled campaign sends nothing more.
if redis.call('HEXISTS', KEYS[1], 'cancelled') == 1 then
  return 'X'
end

local out = {}
local capped = 0
for i = 2, #KEYS do
  local key = KEYS[i]
  -- One read of the user's whole record: this campaign's entry, and the
  -- other campaigns the caps count.
  local all = redis.call('HGETALL', key)
  local cur
  for j = 1, #all, 2 do
    if all[j] == campaign then cur = all[j + 1] break end
  end
  local code
  if cur then
    local kind, _, s, e, u = parse(cur)
    if kind == 's' then code = 'S'
    elseif kind == 'c' then code = 'C'
    elseif kind == 'f' then code = 'F'
    elseif s == seq and e <= epoch then code = 'R' -- our own shard, again
    elseif u > now then code = 'B'
    else code = 'R' end -- a reservation whose holder is gone
  end
  if code == nil or code == 'R' then
    -- Count this user's other campaigns in each cap's window, and forget
    -- what is older than keep.
    local over = false
    local counts = {}
    for c = 1, ncaps do counts[c] = 0 end
    for j = 1, #all, 2 do
      local f, v = all[j], all[j + 1]
      if f ~= campaign then
        local kind, at, _, _, u = parse(v)
        if at < now - keep and (kind ~= 'r' or u < now) then
          redis.call('HDEL', key, f)
        elseif kind == 's' or (kind == 'r' and u > now) then
          for c = 1, ncaps do
            if at > now - caps[c][1] then counts[c] = counts[c] + 1 end
          end
        end
      end
    end
    for c = 1, ncaps do
      if counts[c] >= caps[c][2] then over = true end
    end
    if over then
      redis.call('HSET', key, campaign, 'c|' .. now)
      capped = capped + 1
      code = 'C'
    else
      redis.call('HSET', key, campaign, 'r|' .. seq .. '|' .. epoch .. '|' .. (now + lease) .. '|' .. now)
      code = 'R'
    end
    redis.call('PEXPIRE', key, keep)
  end
  out[#out + 1] = code
end
if capped > 0 then
  redis.call('HINCRBY', KEYS[1], 'capped', capped)
end
return table.concat(out)
