-- check.lua: one authenticated request (MemoryStore.check). Mirrors core.judge, then
-- core.touch_due / core.touched / core.retention for a valid session; an ended one becomes
-- a tombstone here, atomically, and is returned once so that one audit event is written.
-- Strict mode: an id with neither record nor tombstone causes no write at all. A write
-- rewrites only a record read in this same script, so a request that finishes after a logout
-- cannot bring the session back.
--
-- KEYS[1] the record '<base>s:<short>', KEYS[2] its tombstone '<base>e:<short>', [KEYS[3] idx]
-- ARGV[1..19] the context (rules.lua), ARGV[20] session id, ARGV[21] passive '1'/'0',
-- ARGV[22] an earlier use of the session by this process that is owed now (ms; '' = none):
--          it counts before the judgement and is written (stores.write_behind),
-- ARGV[23] '1' when the token presented has no issue time, which a device-bound session
--          refuses (core.refuses_token): not a use
-- returns {0, reason or nil}               unknown: the tombstone's reason (nil = invalid)
--         {1, record, now, written or ''}  valid: the record as read (before any write) and
--                                          the last-seen written by this check, if any
--         {2, reason, record}              ended by this check
--         {3}                              valid, but refuses the token presented
local value = redis.call('GET', KEYS[1])
if not value then
  return {0, redis.call('GET', KEYS[2])}
end
local rec = parse(ARGV[20], value)
local write = false
local owed = tonumber(ARGV[22])
if owed and owed > rec.l and owed <= NOW then
  rec.l = owed
  write = true
end
local reason = judge(rec)
if reason then
  finish(rec, reason)
  return {2, reason, value}
end
if rec.b and ARGV[23] == '1' then
  if write then store(rec) end
  return {3}
end
-- an active request that writes anyway writes itself: the latest use
if ARGV[21] ~= '1' and (write or NOW - rec.l >= touch_interval(rec)) then
  rec.l = NOW
  write = true
end
if not write then return {1, value, int(NOW), ''} end
store(rec)
return {1, value, int(NOW), int(rec.l)}
