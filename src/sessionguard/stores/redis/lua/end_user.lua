-- end_user: end a user's sessions, one page of the user's index at a time (MemoryStore.end_user):
-- the page's records go through the pruning step of core-judged validity (store.lua
-- records_of), then every valid one on the platform (or on any platform), except the kept
-- one, becomes a tombstone; the ended ids are announced on the bus (LOCAL_CACHE). The store
-- calls it page after page until the cursor comes back empty.
--
-- KEYS   user index '<base>u:<user>'
-- ARGV   context, now (ms; '' = the server's TIME), tag, after: the cursor ('' = the start),
--        count: index members to read, reason, platform ('' = all), keep: id to keep ('' = none)
-- returns {cursor ('' = the end), id1, record1, id2, record2, ...}: the sessions ended
local K, A = KEY.end_user, ARG.end_user
local c, now, tag = context(ARGV[A.context]), clock(ARGV[A.now]), ARGV[A.tag]
local index = KEYS[K.index]
local base, platform, keep = c.prefix .. ':{' .. tag .. '}:', ARGV[A.platform], ARGV[A.keep]
local code = ''
if platform ~= '' then code = code_of(platform) end
local members, cursor = page_of(index, ARGV[A.after], tonumber(ARGV[A.count]), code)
local reply, ids, ended = {cursor}, {}, {}
for _, rec in ipairs(records_of(c, now, base, index, members, true)) do
  if rec.id ~= keep then
    rec.reason = ARGV[A.reason]
    ended[#ended + 1] = rec
    reply[#reply + 1] = rec.id
    reply[#reply + 1] = rec.value
    ids[#ids + 1] = rec.id
  end
end
finish_all(c, ended, now)
announce(c, ids)
return reply
