-- state.lua: change the state every app server caches, and announce it. Two changes:
--   'epoch'  sign out everyone in constant time (MemoryStore.end_all), mirroring
--            core.epoch_after: every session created up to now ends unless it is the kept one
--            (and the last sign-out of everyone did not end that one already);
--   'policy' store the policy override (MemoryStore.set_policy) that core.judge and
--            core.admission then apply.
-- The revision is bumped and the whole new state published on the bus in the same step, so
-- every process's cached copy follows at once and never goes back to an older revision.
--
-- KEYS[1] the state hash '<prefix>:state' (fields policy, at, keep, rev, gen)
-- ARGV[1] channel '<prefix>:bus', ARGV[2] 'epoch' or 'policy',
--      ARGV[3] for 'epoch': now (ms; '' = the server's TIME); for 'policy': the policy JSON
--      ARGV[4] for 'epoch': the id to keep ('' = none), ARGV[5] its login time (ms)
-- returns the new state as a JSON object of strings (as published)
if ARGV[2] == 'epoch' then
  local now
  if ARGV[3] ~= '' then
    now = tonumber(ARGV[3])
  else
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  local keep = ARGV[4]
  if keep ~= '' then
    local last = redis.call('HMGET', KEYS[1], 'at', 'keep')
    if tonumber(ARGV[5]) < tonumber(last[1] or '0') and last[2] ~= keep then keep = '' end
  end
  redis.call('HSET', KEYS[1], 'at', string.format('%.0f', now + 1), 'keep', keep)
elseif ARGV[2] == 'policy' then
  redis.call('HSET', KEYS[1], 'policy', ARGV[3])
else
  error('sessionguard: unknown state change')
end
if redis.call('HEXISTS', KEYS[1], 'gen') == 0 then
  -- the generation tells a state created anew (after data loss) from an older revision
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[1], 'gen', t[1] .. '.' .. t[2])
end
redis.call('HINCRBY', KEYS[1], 'rev', 1)
local flat = redis.call('HGETALL', KEYS[1])
local state = {}
for i = 1, #flat, 2 do state[flat[i]] = flat[i + 1] end
local payload = cjson.encode(state)
redis.call('PUBLISH', ARGV[1], payload)
return payload
