-- set_user_timeouts.lua: replace a user's own idle timeouts and apply them to the user's
-- valid sessions at once (MemoryStore.set_user_timeouts). Mirrors core.idle_limit (the
-- record's user idle) and core.retention (each record is rewritten with its new expiry).
--
-- KEYS[1] user index '<base>u:<user>', KEYS[2] user settings '<base>t:<user>', [KEYS[3] idx]
-- ARGV[1..19] the context (rules.lua), ARGV[20..22] web, mobile, desktop: 'x' not set,
--      '' set to none, or seconds
-- returns the ids of the sessions updated (announced on the bus: LOCAL_CACHE)
local given = {web = ARGV[20], mobile = ARGV[21], desktop = ARGV[22]}
redis.call('DEL', KEYS[2])
for platform, value in pairs(given) do
  if value ~= 'x' then redis.call('HSET', KEYS[2], platform, value) end
end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], SETTINGS_MS) end
local recs, ids = user_records(KEYS[1], true), {}
for _, rec in ipairs(recs) do
  local value = given[rec.p]
  if value == 'x' then value = '' end
  rec.ui = tonumber(value)
  store(rec)
  ids[#ids + 1] = rec.id
end
expire_index(KEYS[1], recs)
announce(ids)
return ids
