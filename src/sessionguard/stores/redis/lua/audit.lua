-- audit.lua: the events of one self-service action of one user (MemoryStore.append_self_service),
-- mirroring sessionguard.audit.admit: a 'settings_changed' within SETTINGS_EVERY ms of the user's
-- last recorded one is coalesced (not recorded); any other event beyond LIMIT in the user's window
-- of WINDOW ms (from its first event) is counted instead of recorded, and the window's one
-- 'rate_limited' event says how many: it is replaced (XDEL + XADD) as the count grows. Then the
-- stream is trimmed as every append trims it (MAXLEN ~, and MINID for AUDIT_RETENTION).
-- The allowance hash shares the stream's slot ('{<prefix>:audit}' is the stream's own name), so
-- this is one atomic step on a Cluster too.
--
-- KEYS[1] the stream '<prefix>:audit', KEYS[2] the user's allowance '<prefix>:{<prefix>:audit}:q:<user>'
--      (hash: start, recorded, dropped, since, settings, report)
-- ARGV[1] now (ms, the events' time), ARGV[2] now in ISO 8601 (the window's 'since' if it starts
--      now), ARGV[3] AUDIT_MAXLEN, ARGV[4] MINID ('' = none), ARGV[5] LIMIT, ARGV[6] WINDOW (ms),
--      ARGV[7] SETTINGS_EVERY (ms), ARGV[8] user id, ARGV[9] actor; then each event as its type,
--      its number n of field names and values, and those n strings
-- returns the number of events recorded (the 'rate_limited' one not counted)
local now = tonumber(ARGV[1])
local LIMIT, WINDOW, EVERY = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local q = redis.call('HMGET', KEYS[2], 'start', 'recorded', 'dropped', 'since', 'settings', 'report')
local start, recorded, dropped = tonumber(q[1]), tonumber(q[2]) or 0, tonumber(q[3]) or 0
local since, settings, report = q[4] or ARGV[2], tonumber(q[5]), q[6]
if not start or now >= start + WINDOW then
  start, recorded, dropped, since, report = now, 0, 0, ARGV[2], false
end
local counted, recorded_before = dropped, recorded

local function add(fields)
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
end

local i = 10
while i <= #ARGV do
  local kind, n = ARGV[i], tonumber(ARGV[i + 1])
  local fields = {}
  for j = 1, n do fields[j] = ARGV[i + 1 + j] end
  i = i + 2 + n
  if kind == 'settings_changed' and settings and now - settings < EVERY then
    -- coalesced: the user's settings changed within the minute of a recorded change
  elseif recorded < LIMIT then
    add(fields)
    recorded = recorded + 1
    if kind == 'settings_changed' then settings = now end
  else
    dropped = dropped + 1
  end
end
if dropped > counted then
  if report then redis.call('XDEL', KEYS[1], report) end
  local detail = '{"not_recorded":' .. string.format('%.0f', dropped) .. ',"limit":' .. string.format('%.0f', LIMIT)
    .. ',"since":"' .. since .. '"}'
  report = add({'type', 'rate_limited', 'at', ARGV[1], 'actor', ARGV[9], 'user_id', ARGV[8], 'detail', detail})
end
redis.call('HSET', KEYS[2], 'start', string.format('%.0f', start), 'recorded', recorded, 'dropped', dropped,
  'since', since)
if settings then redis.call('HSET', KEYS[2], 'settings', string.format('%.0f', settings)) end
if report then redis.call('HSET', KEYS[2], 'report', report) else redis.call('HDEL', KEYS[2], 'report') end
-- kept while it limits anything: the window, and the minute after a settings change
local ends = start + WINDOW
if settings and settings + EVERY > ends then ends = settings + EVERY end
redis.call('PEXPIRE', KEYS[2], string.format('%.0f', math.max(ends - now, 1)))
if ARGV[4] ~= '' then redis.call('XTRIM', KEYS[1], 'MINID', ARGV[4]) end
return recorded - recorded_before
