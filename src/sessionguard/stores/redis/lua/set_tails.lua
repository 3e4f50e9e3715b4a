-- set_tails: give sessions of one user a new tail (ip, city, user agent, device and metadata:
-- MemoryStore.set_roles rewrites the metadata's roles). The caller read the user's sessions
-- and encoded each new tail; a session that has ended since stays ended (core.judge: no
-- resurrection), one still valid keeps its times and retention (store.lua store). The tail is
-- never parsed here. The ids updated are announced on the bus (LOCAL_CACHE).
--
-- KEYS   records...: '<base>s:<short>' of one user, one per pair
-- ARGV   context, now (ms; '' = the server's TIME), tails...: pairs of id and tail
-- returns the ids updated
local K, A = KEY.set_tails, ARG.set_tails
local c = context(ARGV[A.context])
local now = clock(ARGV[A.now])
local ids = {}
for i = A.tails, #ARGV - 1, 2 do
  local id, tail = ARGV[i], ARGV[i + 1]
  local key = KEYS[K.records + (i - A.tails) / 2]
  local value = redis.call('GET', key)
  if value then
    local rec = parse(key, id, value)
    if not judge_record(c, now, rec) then
      store(c, now, rec, tail)
      ids[#ids + 1] = id
    end
  end
end
announce(c, ids)
return ids
