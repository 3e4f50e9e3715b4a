-- rotate.lua: give a valid session a new id, hence a new token (MemoryStore.rotate). The
-- record moves to the new key with every field kept (login time, last seen, remember-me, own
-- timeout, platform, tail); the old key goes without a tombstone, so the old token is
-- unknown: invalid. The user's index and the listing index follow. A use of the session this
-- process has not written yet comes along (core.touched). A retry finds the new record and
-- changes nothing. The old id is announced on the bus (LOCAL_CACHE).
--
-- KEYS[1] the record '<base>s:<short>', KEYS[2] the new record, [KEYS[3] idx]; the user's
--      index '<base>u:<user>' is derived from the record (as finish() does: same slot)
-- ARGV[1..19] the context (rules.lua), ARGV[20] id, ARGV[21] new id, ARGV[22] unwritten use
--      (ms, '' = none)
-- returns {1, record}          the record under its new id
--         {0, reason}          the session had ended ('' = unknown)
--         {2, reason, record}  ended by this call (a timeout noticed now: one audit event)
local id, new_id = ARGV[20], ARGV[21]
local done = redis.call('GET', KEYS[2])
if done then return {1, done} end
local value = redis.call('GET', KEYS[1])
if not value then return {0, redis.call('GET', key('e:', id)) or ''} end
local rec = parse(id, value)
local seen = tonumber(ARGV[22])
if seen and seen > rec.l and seen <= NOW then rec.l = seen end
local reason = judge(rec)
if reason then
  finish(rec, reason)
  return {2, reason, value}
end
local index = BASE .. 'u:' .. rec.u
redis.call('DEL', KEYS[1])
redis.call('ZREM', index, user_member(id))
if IDX then redis.call('ZREM', IDX, idx_member(rec)) end
rec.id = new_id
store(rec)
redis.call('ZADD', index, 0, user_member(new_id))
if IDX then redis.call('ZADD', IDX, 0, idx_member(rec)) end
announce({id})
return {1, encode(rec)}
