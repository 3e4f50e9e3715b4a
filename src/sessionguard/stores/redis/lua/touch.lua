-- touch.lua: write back uses of sessions this process saw but did not write (stores.unwritten;
-- MemoryStore._write): last-seen moves forward to each use, for sessions still valid with it.
-- Nothing ended comes back, and nothing ends here (the next request reports an ending).
--
-- KEYS[1..n] records '<base>s:<short>' of one slot, [KEYS[n+1] idx]
-- ARGV[1..19] the context (rules.lua), then pairs: ARGV[20] id, ARGV[21] use (ms), ...
-- returns the number of records written
local written = 0
for i = 20, #ARGV, 2 do
  local value = redis.call('GET', KEYS[(i - 18) / 2])
  local seen = tonumber(ARGV[i + 1])
  if value then
    local rec = parse(ARGV[i], value)
    if seen > rec.l and seen <= NOW then
      rec.l = seen
      if not judge(rec) then
        store(rec)
        written = written + 1
      end
    end
  end
end
return written
