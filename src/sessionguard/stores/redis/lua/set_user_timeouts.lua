-- set_user_timeouts: replace a user's own idle timeouts (on the first page) and apply them to
-- the user's valid sessions, one page of the user's index at a time
-- (MemoryStore.set_user_timeouts). Mirrors core.idle_limit (the record's user idle) and
-- core.retention (each record is rewritten with its new expiry); the store calls it page
-- after page until the cursor comes back empty.
--
-- KEYS   user index '<base>u:<user>', user settings '<base>t:<user>'
-- ARGV   context, now (ms; '' = the server's TIME), tag, after: the cursor ('' = the start),
--        count: index members to read, first '1' on the first page (the settings are written),
--        timeouts: 'platform=value' for each platform, ','-separated; a value 'x' not set, ''
--        set to none, or seconds
-- returns {cursor ('' = the end), id1, id2, ...}: the sessions updated (announced on the bus)
local K, A = KEY.set_user_timeouts, ARG.set_user_timeouts
local c, now, tag = context(ARGV[A.context]), clock(ARGV[A.now]), ARGV[A.tag]
local index, settings = KEYS[K.index], KEYS[K.settings]
local given = {}
for platform, value in string.gmatch(ARGV[A.timeouts], '([^,=]+)=([^,]*)') do given[platform] = value end
if ARGV[A.first] == '1' then
  redis.call('DEL', settings)
  for platform, value in pairs(given) do
    if value ~= 'x' then redis.call('HSET', settings, platform, value) end
  end
  if redis.call('EXISTS', settings) == 1 then redis.call('PEXPIRE', settings, SETTINGS_MS) end
end
local base = c.prefix .. ':{' .. tag .. '}:'
local members, cursor = page_of(index, ARGV[A.after], tonumber(ARGV[A.count]), '')
local reply, ids, longest = {cursor}, {}, 0
for _, rec in ipairs(records_of(c, now, base, index, members, true)) do
  local value = given[rec.p]
  if value == 'x' or not value then value = '' end
  rec.ui = tonumber(value)
  local keep = store(c, now, rec)
  if longest and (not keep or keep > longest) then longest = keep end
  reply[#reply + 1] = rec.id
  ids[#ids + 1] = rec.id
end
if #ids > 0 then keep_index(index, longest) end
announce(c, ids)
return reply
