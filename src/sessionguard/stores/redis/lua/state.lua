-- state: change the state every app server caches, and announce it. Two changes:
--   'epoch'  sign out everyone in constant time (MemoryStore.end_all), mirroring
--            core.epoch_after: every session created up to now ends unless it is the kept one;
--   'policy' store the policy override (MemoryStore.set_policy) that core.judge and
--            core.admission then apply.
-- The revision is bumped and the whole new state published on the bus in the same step, so
-- every process's cached copy follows at once and never goes back to an older revision.
--
-- KEYS   state: the state hash '<prefix>:state' (fields policy, at, keep, rev, gen)
-- ARGV   channel '<prefix>:bus', change 'epoch' or 'policy',
--        value: for 'epoch' now (ms; '' = the server's TIME), for 'policy' the policy JSON,
--        keep: for 'epoch' the id to keep ('' = none)
-- returns the new state as a JSON object of strings (as published)
local K, A = KEY.state, ARG.state
local key = KEYS[K.state]
if ARGV[A.change] == 'epoch' then
  redis.call('HSET', key, 'at', string.format('%.0f', clock(ARGV[A.value]) + 1), 'keep', ARGV[A.keep])
elseif ARGV[A.change] == 'policy' then
  redis.call('HSET', key, 'policy', ARGV[A.value])
else
  error('sessionguard: unknown state change')
end
if redis.call('HEXISTS', key, 'gen') == 0 then
  -- the generation tells a state created anew (after data loss) from an older revision
  local t = redis.call('TIME')
  redis.call('HSET', key, 'gen', t[1] .. '.' .. t[2])
end
redis.call('HINCRBY', key, 'rev', 1)
local flat = redis.call('HGETALL', key)
local state = {}
for i = 1, #flat, 2 do state[flat[i]] = flat[i + 1] end
local payload = cjson.encode(state)
redis.call('PUBLISH', ARGV[A.channel], payload)
return payload
