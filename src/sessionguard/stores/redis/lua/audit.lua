-- audit: the events of one self-service action of one user (MemoryStore.append_self_service),
-- mirroring sessionguard.audit.admit: a 'settings_changed' within SETTINGS_EVERY ms of the user's
-- last recorded one is coalesced (not recorded); any other event beyond LIMIT in the user's window
-- of WINDOW ms (from its first event) is counted instead of recorded, and the window's one
-- 'rate_limited' event says how many: it is replaced (XDEL + XADD) as the count grows. Then the
-- stream is trimmed as every append trims it (MAXLEN ~, and MINID for AUDIT_RETENTION).
-- The allowance hash shares the stream's slot ('{<prefix>:audit}' is the stream's own name), so
-- this is one atomic step on a Cluster too.
--
-- KEYS   stream '<prefix>:audit', allowance: the user's '<prefix>:{<prefix>:audit}:q:<user>'
--        (hash: start, recorded, dropped, since, settings, report)
-- ARGV   now (ms, the events' time), since: now in ISO 8601 (recorded as the start of a
--        new allowance), maxlen: AUDIT_MAXLEN, minid: MINID ('' = none), limit: LIMIT, window: WINDOW
--        (ms), every: SETTINGS_EVERY (ms), user id, actor; then events...: each event as its
--        type, its number n of field names and values, and those n strings
-- returns the number of events recorded (the 'rate_limited' one not counted)
local K, A = KEY.audit, ARG.audit
local stream, allowance = KEYS[K.stream], KEYS[K.allowance]
local now = tonumber(ARGV[A.now])
local LIMIT, WINDOW, EVERY = tonumber(ARGV[A.limit]), tonumber(ARGV[A.window]), tonumber(ARGV[A.every])
local q = redis.call('HMGET', allowance, 'start', 'recorded', 'dropped', 'since', 'settings', 'report')
local start, recorded, dropped = tonumber(q[1]), tonumber(q[2]) or 0, tonumber(q[3]) or 0
local since, settings, report = q[4] or ARGV[A.since], tonumber(q[5]), q[6]
if not start or now >= start + WINDOW then
  start, recorded, dropped, since, report = now, 0, 0, ARGV[A.since], false
end
local counted, recorded_before = dropped, recorded

local function add(fields)
  return redis.call('XADD', stream, 'MAXLEN', '~', ARGV[A.maxlen], '*', unpack(fields))
end

local i = A.events
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
  if report then redis.call('XDEL', stream, report) end
  local detail = '{"not_recorded":' .. string.format('%.0f', dropped) .. ',"limit":' .. string.format('%.0f', LIMIT)
    .. ',"since":"' .. since .. '"}'
  report = add({'type', 'rate_limited', 'at', ARGV[A.now], 'actor', ARGV[A.actor], 'user_id', ARGV[A.user], 'detail', detail})
end
redis.call('HSET', allowance, 'start', string.format('%.0f', start), 'recorded', recorded, 'dropped', dropped,
  'since', since)
if settings then redis.call('HSET', allowance, 'settings', string.format('%.0f', settings)) end
if report then redis.call('HSET', allowance, 'report', report) else redis.call('HDEL', allowance, 'report') end
-- kept while it limits anything: the window, and the minute after a settings change
local ends = start + WINDOW
if settings and settings + EVERY > ends then ends = settings + EVERY end
redis.call('PEXPIRE', allowance, string.format('%.0f', math.max(ends - now, 1)))
if ARGV[A.minid] ~= '' then redis.call('XTRIM', stream, 'MINID', ARGV[A.minid]) end
return recorded - recorded_before
