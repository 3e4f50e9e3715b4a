-- bind.lua: bind a session to a device's public key (MemoryStore.bind, DBSC registration).
-- Only a record that exists and is valid by core.judge, and is not bound yet, is bound: it gets
-- the 'b' flag, its k:<short> hash the key and the challenge answered (core.redeemable), and
-- the binding is announced on the bus (LOCAL_CACHE keeps no unbound view of it). Not a use:
-- only a use owed by this process is written, as check.lua writes it; a session found ended
-- becomes a tombstone here and is returned once, for its audit event.
--
-- KEYS[1] the record '<base>s:<short>', KEYS[2] its tombstone '<base>e:<short>', [KEYS[3] idx]
-- ARGV[1..19] the context (rules.lua), ARGV[20] session id, ARGV[21] a use owed now (ms; ''),
-- ARGV[22] the key (JWK text), ARGV[23] the challenge's id, ARGV[24] its issue time (ms)
-- returns {0, reason or nil}    unknown: the tombstone's reason (nil = invalid)
--         {1, record}           bound: the record as written
--         {2, reason, record}   ended, found by this call
--         {4, refusal}          valid but not bound: 'bound' (already) or 'used' (challenge)
local value = redis.call('GET', KEYS[1])
if not value then
  return {0, redis.call('GET', KEYS[2])}
end
local rec = parse(ARGV[20], value)
local owed = tonumber(ARGV[21])
local write = owed and owed > rec.l and owed <= NOW
if write then rec.l = owed end
local reason = judge(rec)
if reason then
  finish(rec, reason)
  return {2, reason, value}
end
local refusal = nil
if rec.b then
  refusal = 'bound'
elseif not redeemable(tonumber(ARGV[24]), false) then
  refusal = 'used'
end
if refusal then
  if write then store(rec) end
  return {4, refusal}
end
rec.b = true
store(rec)
local device = key('k:', rec.id)
redis.call('DEL', device)
redis.call('HSET', device, 'key', ARGV[22], ARGV[23], ARGV[24])
keep_device_key(rec)
announce({rec.id})
return {1, encode(rec)}
