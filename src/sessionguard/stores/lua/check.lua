-- check.lua: one authenticated request (MemoryStore.check). Mirrors core.judge, then
-- core.touch_due / core.touched / core.retention for a valid session; an ended one becomes
-- a tombstone here, atomically, and is returned once so that one audit event is written.
-- Strict mode: an id with neither record nor tombstone causes no write at all. The touch
-- rewrites only a record read in this same script, so a request that finishes after a logout
-- cannot bring the session back.
--
-- KEYS[1] the record '<base>s:<short>', KEYS[2] its tombstone '<base>e:<short>', [KEYS[3] idx]
-- ARGV[1..19] the context (rules.lua), ARGV[20] session id, ARGV[21] passive '1'/'0'
-- returns {0, reason or nil}            unknown: the tombstone's reason (nil = invalid)
--         {1, record, now, touched 0/1} valid: the record as read (before the touch)
--         {2, reason, record}           ended by this check
local value = redis.call('GET', KEYS[1])
if not value then
  return {0, redis.call('GET', KEYS[2])}
end
local rec = parse(ARGV[20], value)
local reason = judge(rec)
if reason then
  finish(rec, reason)
  return {2, reason, value}
end
local touched = 0
if ARGV[21] ~= '1' and NOW - rec.l >= TOUCH_MS then
  rec.l = math.max(rec.l, NOW)
  store(rec)
  touched = 1
end
return {1, value, int(NOW), touched}
