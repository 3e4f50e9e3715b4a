-- touch: write back uses of sessions this process saw but did not write (stores.write_behind;
-- MemoryStore._write): last-seen moves forward to each use, for sessions still valid with it
-- (core.judge; the new expiry by core.retention). Nothing ended comes back, and nothing ends
-- here (the next request reports an ending).
--
-- KEYS   records...: '<base>s:<short>' of one slot, one per use
-- ARGV   context, now (ms; '' = the server's TIME), uses...: pairs of id and use (ms)
-- returns the number of records written
local K, A = KEY.touch, ARG.touch
local c, now = context(ARGV[A.context]), clock(ARGV[A.now])
local written = 0
for i = A.uses, #ARGV, 2 do
  local key = KEYS[K.records + (i - A.uses) / 2]
  local value = redis.call('GET', key)
  local seen = tonumber(ARGV[i + 1])
  if value then
    local rec = parse(key, ARGV[i], value)
    if seen > rec.l and seen <= now then
      rec.l = seen
      if not judge_record(c, now, rec) then
        keep_index(index_of(rec), store(c, now, rec))
        written = written + 1
      end
    end
  end
end
return written
