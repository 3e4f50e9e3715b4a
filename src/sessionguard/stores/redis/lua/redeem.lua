-- redeem: answer a bound session's challenge once (MemoryStore.redeem, DBSC refresh). Only a
-- record that exists, is valid by core.judge and is bound, whose k:<short> hash does not hold
-- the challenge yet (core.redeemable), redeems it: the challenge is added to the hash
-- (challenges older than core.CHALLENGE_MS leave it) and the key is returned, for the caller to
-- check the proof with. Not a use (a use owed is written, as check writes it); a session found
-- ended becomes a tombstone here, returned once.
--
-- KEYS   record '<base>s:<short>' (its tombstone and device key share its slot)
-- ARGV   context, now (ms; '' = the server's TIME), use: this process's use of the session
--        that is owed now (ms; '' = none), challenge: the challenge's id, issued: its issue
--        time (ms)
-- returns {0, reason}          unknown: the tombstone's reason ('' = invalid)
--         {1, record, key}     redeemed: the record and the bound key
--         {2, reason, record}  ended, found by this call
--         {4, refusal}         valid but not redeemed: 'unbound' (no key) or 'used'
local K, A = KEY.redeem, ARG.redeem
local c = context(ARGV[A.context])
local key = KEYS[K.record]
local answer, rec, now, write = device_step(c, key, ARGV[A.now], ARGV[A.use])  -- store.lua
if answer then return answer end
if write then keep_index(index_of(rec), store(c, now, rec)) end
local device = device_of(key)
local held = rec.b and redis.call('HGETALL', device) or {}
local challenge, bound, used = ARGV[A.challenge], nil, false
for i = 1, #held, 2 do
  local field, at = held[i], held[i + 1]
  if field == 'key' then
    bound = at
  elseif field == challenge then
    used = true
  elseif now - tonumber(at) > CHALLENGE_MS then
    redis.call('HDEL', device, field)
  end
end
if not bound then return {4, 'unbound'} end
if not redeemable(now, tonumber(ARGV[A.issued]), used) then return {4, 'used'} end
redis.call('HSET', device, challenge, ARGV[A.issued])
keep_device_key(rec)
return {1, encode(rec), bound}
