-- draw.lua: the steps of an activity's draw that must be atomic.
--
-- KEYS[1] fence  (hash: topic/partition -> highest epoch seen)
-- KEYS[2] state  (hash: closed, drawn, published)
-- KEYS[3] draw   (the committed draw record)
-- ARGV[1] fence field  ARGV[2] epoch (0 = fencing off)  ARGV[3] op
-- ARGV[4] draw record (commit)  ARGV[5] expire at (unix s)
--
-- op "close" stops participation (entry.lua rejects with draw_closed from
-- then on), so the participants read next are final. op "commit" stores
-- the draw record unless one is stored. op "published" notes that the
-- results were acknowledged. Every op returns {"drawn", record} when a
-- record is stored (the first commit wins; a draw is a deterministic
-- function of its inputs, so a repeat computes the same record), else
-- {"closed"} or {"ok"}; {"fenced"} if a newer owner of the partition has
-- written.
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
local op = ARGV[3]
if op == 'published' then
  redis.call('HSET', KEYS[2], 'published', '1')
  return {'ok'}
end
local rec = redis.call('GET', KEYS[3])
if rec then
  return {'drawn', rec}
end
redis.call('HSET', KEYS[2], 'closed', '1')
redis.call('EXPIREAT', KEYS[2], ARGV[5])
if op == 'close' then
  return {'closed'}
end
redis.call('SET', KEYS[3], ARGV[4])
redis.call('EXPIREAT', KEYS[3], ARGV[5])
redis.call('HSET', KEYS[2], 'drawn', '1')
return {'drawn', ARGV[4]}
