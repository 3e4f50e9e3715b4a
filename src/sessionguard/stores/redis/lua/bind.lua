-- bind: bind a session to a device's public key (MemoryStore.bind, DBSC registration). Only a
-- record that exists, is valid by core.judge and is not bound yet is bound: it gets the 'b'
-- flag, its k:<short> hash the key and the challenge answered (core.redeemable), and the
-- binding is announced on the bus (LOCAL_CACHE keeps no unbound view of it). Not a use: only a
-- use owed by this process is written, as check writes it; a session found ended becomes a
-- tombstone here and is returned once, for its audit event.
--
-- KEYS   record '<base>s:<short>' (its tombstone and device key share its slot)
-- ARGV   context, now (ms; '' = the server's TIME), use: this process's use of the session
--        that is owed now (ms; '' = none), key: the device's public key (JWK text),
--        challenge: the challenge's id, issued: its issue time (ms)
-- returns {0, reason}          unknown: the tombstone's reason ('' = invalid)
--         {1, record}          bound: the record as written
--         {2, reason, record}  ended, found by this call
--         {4, refusal}         valid but not bound: 'bound' (already) or 'used' (challenge)
local K, A = KEY.bind, ARG.bind
local c = context(ARGV[A.context])
local key = KEYS[K.record]
local answer, rec, now, write = device_step(c, key, ARGV[A.now], ARGV[A.use])  -- store.lua
if answer then return answer end
local refusal = nil
if rec.b then
  refusal = 'bound'
elseif not redeemable(now, tonumber(ARGV[A.issued]), false) then
  refusal = 'used'
end
if refusal then
  if write then keep_index(index_of(rec), store(c, now, rec)) end
  return {4, refusal}
end
rec.b = true
keep_index(index_of(rec), store(c, now, rec))
local device = device_of(key)
redis.call('DEL', device)
redis.call('HSET', device, 'key', ARGV[A.key], ARGV[A.challenge], ARGV[A.issued])
keep_device_key(rec)
announce(c, {rec.id})
return {1, encode(rec)}
