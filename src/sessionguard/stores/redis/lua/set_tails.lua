-- set_tails.lua: give sessions of one user a new tail (ip, city, user agent, device and
-- metadata: MemoryStore.set_roles rewrites the metadata's roles). The caller read the user's
-- sessions and encoded each new tail; a session that has ended since stays ended (no
-- resurrection), one still valid keeps its times and retention (rules.lua store). The tail is
-- never parsed here. The ids updated are announced on the bus (LOCAL_CACHE).
--
-- KEYS[1..n] the records '<base>s:<short>', [KEYS[n+1] idx]
-- ARGV[1..19] the context (rules.lua), ARGV[20..] id1, tail1, id2, tail2, ...
-- returns the ids updated
local ids = {}
for i = 20, #ARGV - 1, 2 do
  local id, tail = ARGV[i], ARGV[i + 1]
  local value = redis.call('GET', key('s:', id))
  if value then
    local rec = parse(id, value)
    if not judge(rec) then
      rec.blob = tail
      store(rec)
      ids[#ids + 1] = id
    end
  end
end
announce(ids)
return ids
