-- create.lua: a login (MemoryStore.create). Mirrors core.admission over the user's valid
-- sessions on the platform, pruned in this same step (missing ones leave the index, ended
-- ones become tombstones), so stale entries never lock a user out and however many logins
-- race the user never holds more than the limit. The id comes from the caller, so a retried
-- create finds its own record and changes nothing: a retry cannot take two slots. Evicted
-- ids are announced on the bus (LOCAL_CACHE).
--
-- KEYS[1] user index '<base>u:<user>', KEYS[2] user settings '<base>t:<user>',
--      KEYS[3] the new record '<base>s:<short>', [KEYS[4] idx]
-- ARGV[1..19] the context (rules.lua), ARGV[20] id, ARGV[21] platform, ARGV[22] remember '1'/'0',
--      ARGV[23] user (keys.encode_user), ARGV[24] the JSON tail of the record
-- returns {0, limit}                      refused (ON_LIMIT=reject): nothing changed
--         {1, record, now, id1, record1, ...} created, with the evicted ids and records
--         {2, record}                     already created by an earlier attempt
--         {3, reason}                     created by an earlier attempt and ended since
local id, platform = ARGV[20], ARGV[21]
local existing = redis.call('GET', KEYS[3])
if existing then return {2, existing} end
local gone = redis.call('GET', key('e:', id))
if gone then return {3, gone} end

local alive = user_records(KEYS[1], true)
local same = {}
for _, rec in ipairs(alive) do
  if rec.p == platform then same[#same + 1] = rec end
end

local reply = {1, '', ''}
local limit = max_of(platform)
local evicted, ids = {}, {}
if limit and #same >= limit then
  if ON_LIMIT == 'reject' then return {0, limit} end
  if EVICT == 'least_recent' then
    table.sort(same, function(a, b)
      if a.l ~= b.l then return a.l < b.l end
      if a.c ~= b.c then return a.c < b.c end
      return a.id < b.id
    end)
  else
    table.sort(same, function(a, b)
      if a.c ~= b.c then return a.c < b.c end
      return a.id < b.id
    end)
  end
  for i = 1, #same - limit + 1 do
    finish(same[i], 'evicted')
    evicted[same[i].id] = true
    ids[#ids + 1] = same[i].id
    reply[#reply + 1] = same[i].id
    reply[#reply + 1] = same[i].raw
  end
end

local own = redis.call('HGET', KEYS[2], platform)
local rec = {id = id, c = NOW, l = NOW, r = ARGV[22] == '1', ui = tonumber(own or ''), p = platform,
             u = ARGV[23], blob = ARGV[24]}
store(rec)
redis.call('ZADD', KEYS[1], 0, user_member(id))
local kept = {rec}
for _, other in ipairs(alive) do
  if not evicted[other.id] then kept[#kept + 1] = other end
end
expire_index(KEYS[1], kept)
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], SETTINGS_MS) end
if IDX then
  redis.call('ZADD', IDX, 0, idx_member(rec))
  prune_idx()
end
announce(ids)
reply[2] = encode(rec)
reply[3] = int(NOW)
return reply
