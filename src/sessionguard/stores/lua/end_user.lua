-- end_user.lua: end every session of one user (MemoryStore.end_user): the user's records go
-- through the pruning step of core-judged validity (rules.lua user_records), then every valid
-- one on the platform (or on any platform), except the kept one, becomes a tombstone.
--
-- KEYS[1] user index '<base>u:<user>', [KEYS[2] idx]
-- ARGV[1..18] the context (rules.lua), ARGV[19] reason, ARGV[20] platform ('' = all),
--      ARGV[21] id to keep ('' = none)
-- returns {id1, record1, id2, record2, ...}: the sessions ended
local reason, platform, keep = ARGV[19], ARGV[20], ARGV[21]
local ended = {}
for _, rec in ipairs(user_records(KEYS[1], true)) do
  if rec.id ~= keep and (platform == '' or rec.p == platform) then
    finish(rec, reason)
    ended[#ended + 1] = rec.id
    ended[#ended + 1] = rec.raw
  end
end
return ended
