-- rotate: give a valid session a new id, hence a new token (MemoryStore.rotate). The record
-- moves to the new key with every field kept (login time, last seen, remember-me, own timeout,
-- platform, tail); the old key goes without a tombstone, so the old token is unknown: invalid.
-- The user's index and the listing index follow. A use of the session this process has not
-- written yet comes along (core.touched), and its judgement is core.judge's. A retry finds the
-- new record and changes nothing. The old id is announced on the bus (LOCAL_CACHE). A
-- device-bound session (DBSC) comes out unbound: its key belongs to the old id, which the
-- browser refreshes by.
--
-- KEYS   record '<base>s:<short>', new_record: the record under the new id (same tag, same
--        slot); the user's index '<base>u:<user>' is derived from the record (same slot)
-- ARGV   context, now (ms; '' = the server's TIME), use: this process's unwritten use of the
--        session (ms; '' = none)
-- returns {1, record}          the record under its new id
--         {0, reason}          the session had ended ('' = unknown)
--         {2, reason, record}  ended by this call (a timeout noticed now: one audit event)
local K, A = KEY.rotate, ARG.rotate
local c = context(ARGV[A.context])
local key, new_key = KEYS[K.record], KEYS[K.new_record]
local done = redis.call('GET', new_key)
if done then return {1, done} end
local value = redis.call('GET', key)
if not value then return {0, reason_of(redis.call('GET', tombstone_of(key)))} end
local now = clock(ARGV[A.now])
local rec = parse(key, id_of(key), value)
local seen = tonumber(ARGV[A.use])
if seen and seen > rec.l and seen <= now then rec.l = seen end
local reason = judge_record(c, now, rec)
if reason then
  finish(c, rec, reason, now)
  return {2, reason, value}
end
local index, old_id = index_of(rec), rec.id
redis.call('DEL', key)
redis.call('ZREM', index, member_of(rec))
if c.idx then
  redis.call('ZREM', c.idx, idx_member(rec))
  redis.call('ZREM', c.dl, pack_id(rec.id))
end
if rec.b then
  redis.call('DEL', device_of(key))
  rec.b = false
end
rec.key, rec.id = new_key, id_of(new_key)
keep_index(index, store(c, now, rec))
redis.call('ZADD', index, 0, member_of(rec))
if c.idx then redis.call('ZADD', c.idx, 0, idx_member(rec)) end
place(c, rec)
announce(c, {old_id})
return {1, encode(rec)}
