-- end: end one session (MemoryStore.end): only a record that exists, is still valid by
-- core.judge and, when a user is given, belongs to that user, becomes a tombstone with the
-- given reason, and is announced on the bus (LOCAL_CACHE). A record that has already ended
-- by time is left for the next check, which reports (and audits) its own reason.
--
-- KEYS   record '<base>s:<short>' (its tombstone '<base>e:<short>' shares its slot)
-- ARGV   context, now (ms; '' = the server's TIME), reason,
--        owner: the user (keys.encode_user) the session must belong to ('' = any user)
-- returns the ended record, or nil when nothing was ended
local K, A = KEY['end'], ARG['end']
local c = context(ARGV[A.context])
local key = KEYS[K.record]
local value = redis.call('GET', key)
if not value then return false end
local rec = parse(key, id_of(key), value)
if ARGV[A.owner] ~= '' and user_of(rec) ~= ARGV[A.owner] then return false end
local now = clock(ARGV[A.now])
if judge_record(c, now, rec) then return false end
finish(c, rec, ARGV[A.reason], now)
announce(c, {rec.id})
return value
