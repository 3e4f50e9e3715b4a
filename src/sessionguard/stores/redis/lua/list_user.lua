-- list_user.lua: the valid sessions of one user by core.judge (MemoryStore.user_sessions when
-- pruning, MemoryStore.list_sessions filtered by user when not).
--
-- KEYS[1] user index '<base>u:<user>', [KEYS[2] idx]
-- ARGV[1..19] the context (rules.lua), ARGV[20] '1' to prune (drop missing members,
--      tombstone ended records) or '0' to only read
-- returns {now, id1, record1, id2, record2, ...}
local reply = {int(NOW)}
for _, rec in ipairs(user_records(KEYS[1], ARGV[20] == '1')) do
  reply[#reply + 1] = rec.id
  reply[#reply + 1] = rec.raw
end
return reply
