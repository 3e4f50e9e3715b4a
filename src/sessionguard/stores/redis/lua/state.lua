-- state: read or change the state every app server caches, and announce a change.
--   'read'   the state as it is (state.StateCache reads it so);
--   'epoch'  sign out everyone in constant time (MemoryStore.end_all), mirroring
--            core.epoch_after: every session created up to now ends unless it is the kept one
--            (and the last sign-out of everyone did not end that one already);
--   'policy' store the policy override (MemoryStore.set_policy) that core.judge and
--            core.admission then apply.
--   'limits' record the limits a process applies (at its start, from its environment).
-- With 'policy' and 'limits', `limits` are the session limits then in force (state.limits_text):
-- when one is lower than the limits last recorded (core.limits_lowered), `lowered` becomes now,
-- and sessions created before then reconcile their user's at their next request (check.lua).
-- Fail closed: a state without its epoch or its tag key (new, lost to an eviction, a failover or
-- a clean-up, or written by a version without a tag key) tells neither which sessions were signed
-- out nor under which slot tags the users' sessions are filed. It is made anew with the epoch at
-- now, so every session existing then ends ('signout_all'), and with a tag key if it had none
-- (the script is atomic: every process racing here ends up with the one key written first).
-- A change (or a state made anew) bumps the revision and publishes the whole new state on the
-- bus in the same step, so every process's cached copy follows at once and never goes back to
-- an older revision.
--
-- KEYS   state: the state hash '<prefix>:state' (fields policy, at, keep, rev, gen, tag_key,
--        limits, lowered)
-- ARGV   channel '<prefix>:bus', change 'read', 'epoch', 'policy' or 'limits', now (ms; '' = the server's
--        TIME), tag_key: a fresh random tag key (hex), used only if the state has none,
--        value: for 'epoch' the id to keep ('' = none), for 'policy' the policy JSON,
--        created: for 'epoch' the kept session's login time (ms)
--        limits: for 'policy' and 'limits', the limits in force ('' = not told)
-- returns the state as a JSON object of strings (as published)
local K, A = KEY.state, ARG.state
local function now()
  return (clock(ARGV[A.now]))
end

-- a tag key is at least 16 bytes in hex (tokens.SlotTags)
local function readable(key)
  return key and #key >= 32 and #key % 2 == 0 and string.match(key, '^%x+$') ~= nil
end

-- core.limits_lowered over two limits texts (state.limits_text: 'name=limit,...', '' unlimited)
local function limits_lowered(old, new)
  local before = {}
  for name, limit in string.gmatch(old, '([^,=]+)=([^,]*)') do before[name] = tonumber(limit) end
  for name, limit in string.gmatch(new, '([^,=]+)=([^,]*)') do
    local n = tonumber(limit)
    if n and (not before[name] or n < before[name]) then return true end
  end
  return false
end

local changed = false
local key = redis.call('HGET', KEYS[K.state], 'tag_key')
if redis.call('HEXISTS', KEYS[K.state], 'at') == 0 or not readable(key) then
  if not readable(key) then redis.call('HSET', KEYS[K.state], 'tag_key', ARGV[A.tag_key]) end
  redis.call('HSET', KEYS[K.state], 'at', string.format('%.0f', now()), 'keep', '')
  changed = true
end
if ARGV[A.change] == 'epoch' then
  local keep = ARGV[A.value]
  if keep ~= '' then
    -- core.epoch_after: a session the last sign-out of everyone ended stays ended
    local last = redis.call('HMGET', KEYS[K.state], 'at', 'keep')
    if tonumber(ARGV[A.created]) < tonumber(last[1] or '0') and last[2] ~= keep then keep = '' end
  end
  redis.call('HSET', KEYS[K.state], 'at', string.format('%.0f', now() + 1), 'keep', keep)
  changed = true
elseif ARGV[A.change] == 'policy' then
  redis.call('HSET', KEYS[K.state], 'policy', ARGV[A.value])
  changed = true
elseif ARGV[A.change] ~= 'read' and ARGV[A.change] ~= 'limits' then
  error('sessionguard: unknown state change')
end
local limits = ARGV[A.limits] or ''
if limits ~= '' and ARGV[A.change] ~= 'read' then
  local recorded = redis.call('HGET', KEYS[K.state], 'limits')
  if recorded ~= limits then
    if recorded and limits_lowered(recorded, limits) then
      redis.call('HSET', KEYS[K.state], 'lowered', string.format('%.0f', now()))
    end
    redis.call('HSET', KEYS[K.state], 'limits', limits)
    changed = true
  end
end
if changed then
  if redis.call('HEXISTS', KEYS[K.state], 'gen') == 0 then
    -- the generation tells a state created anew (after data loss) from an older revision
    local t = redis.call('TIME')
    redis.call('HSET', KEYS[K.state], 'gen', t[1] .. '.' .. t[2])
  end
  redis.call('HINCRBY', KEYS[K.state], 'rev', 1)
end
local flat = redis.call('HGETALL', KEYS[K.state])
local state = {}
for i = 1, #flat, 2 do state[flat[i]] = flat[i + 1] end
local payload = cjson.encode(state)
if changed then redis.call('PUBLISH', ARGV[A.channel], payload) end
return payload
