-- end.lua: end one session (MemoryStore.end): only a record that exists, is still valid by
-- core.judge and, when a user is given, belongs to that user, becomes a tombstone with the
-- given reason, and is announced on the bus (LOCAL_CACHE). A record that has already ended
-- by time is left for the next check, which reports (and audits) its own reason.
--
-- KEYS[1] the record '<base>s:<short>', KEYS[2] its tombstone '<base>e:<short>', [KEYS[3] idx]
-- ARGV[1..19] the context (rules.lua), ARGV[20] id, ARGV[21] reason,
--      ARGV[22] user (keys.encode_user) the session must belong to ('' = any user)
-- returns the ended record, or nil when nothing was ended
local value = redis.call('GET', KEYS[1])
if not value then return false end
local rec = parse(ARGV[20], value)
if ARGV[22] ~= '' and rec.u ~= ARGV[22] then return false end
if judge(rec) then return false end
finish(rec, ARGV[21])
announce({rec.id})
return value
