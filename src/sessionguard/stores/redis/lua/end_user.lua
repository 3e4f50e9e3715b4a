-- end_user.lua: end every session of one user (MemoryStore.end_user): the user's records go
-- through the pruning step of core-judged validity (rules.lua user_records), then every valid
-- one on the platform (or on any platform), except the kept one, becomes a tombstone; the
-- ended ids are announced on the bus (LOCAL_CACHE).
--
-- KEYS[1] user index '<base>u:<user>', [KEYS[2] idx]
-- ARGV[1..19] the context (rules.lua), ARGV[20] reason, ARGV[21] platform ('' = all),
--      ARGV[22] id to keep ('' = none)
-- returns {id1, record1, id2, record2, ...}: the sessions ended
local reason, platform, keep = ARGV[20], ARGV[21], ARGV[22]
local ended, ids = {}, {}
for _, rec in ipairs(user_records(KEYS[1], true)) do
  if rec.id ~= keep and (platform == '' or rec.p == platform) then
    finish(rec, reason)
    ended[#ended + 1] = rec.id
    ended[#ended + 1] = rec.raw
    ids[#ids + 1] = rec.id
  end
end
announce(ids)
return ended
