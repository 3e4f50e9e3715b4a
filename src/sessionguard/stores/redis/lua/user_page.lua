-- user_page: one page of a user's sessions, valid by core.judge (MemoryStore._user_records when
-- pruning: a member whose record is gone leaves the index and an ended record becomes a
-- tombstone; MemoryStore.list_sessions filtered by user when only reading). The store reads a
-- user's sessions page by page (operations.Operations.user_records), so no call holds Redis
-- for long however many sessions the user has.
--
-- KEYS   user index '<base>u:<user>'
-- ARGV   context, now (ms; '' = the server's TIME), tag, after: the cursor ('' = the start),
--        count: index members to read, prune '1' to prune or '0' to only read
-- returns {cursor ('' = the end), id1, record1, id2, record2, ...}
local K, A = KEY.user_page, ARG.user_page
local c, now, tag = context(ARGV[A.context]), clock(ARGV[A.now]), ARGV[A.tag]
local index = KEYS[K.index]
local members, cursor = page_of(index, ARGV[A.after], tonumber(ARGV[A.count]), '')
local alive = records_of(c, now, c.prefix .. ':{' .. tag .. '}:', index, members, ARGV[A.prune] == '1')
local reply = {cursor}
for _, rec in ipairs(alive) do
  reply[#reply + 1] = rec.id
  reply[#reply + 1] = rec.value
end
return reply
