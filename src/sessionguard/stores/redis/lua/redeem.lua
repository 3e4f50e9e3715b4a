-- redeem.lua: answer a bound session's challenge once (MemoryStore.redeem, DBSC refresh).
-- Only a record that exists, is valid by core.judge and is bound, whose k:<short> hash does not
-- hold the challenge yet (core.redeemable), redeems it: the challenge is added to the hash
-- (challenges past core.CHALLENGE_MS are dropped from it, core.still_used) and the key is
-- returned, for the caller to check the proof with. Not a use (a use owed is written, as
-- check.lua writes it); a session found ended becomes a tombstone here, returned once.
--
-- KEYS[1] the record '<base>s:<short>', KEYS[2] its tombstone '<base>e:<short>', [KEYS[3] idx]
-- ARGV[1..19] the context (rules.lua), ARGV[20] session id, ARGV[21] a use owed now (ms; ''),
-- ARGV[22] the challenge's id, ARGV[23] its issue time (ms)
-- returns {0, reason or nil}    unknown: the tombstone's reason (nil = invalid)
--         {1, record, key}      redeemed: the record and the bound key
--         {2, reason, record}   ended, found by this call
--         {4, refusal}          valid but not redeemed: 'unbound' (no key) or 'used'
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
if write then store(rec) end
local device = key('k:', rec.id)
local held = rec.b and redis.call('HGETALL', device) or {}
local bound, used = nil, false
for i = 1, #held, 2 do
  local field, at = held[i], held[i + 1]
  if field == 'key' then
    bound = at
  elseif field == ARGV[22] then
    used = true
  elseif NOW - tonumber(at) > CHALLENGE_MS then
    redis.call('HDEL', device, field)
  end
end
if not bound then return {4, 'unbound'} end
if not redeemable(tonumber(ARGV[23]), used) then return {4, 'used'} end
redis.call('HSET', device, ARGV[22], ARGV[23])
keep_device_key(rec)
return {1, encode(rec), bound}
