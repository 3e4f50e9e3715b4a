-- check: the rare path of an authenticated request, whose process read the record (an MGET,
-- operations.Operations.check) and judged it ended on its estimate of this server's clock:
-- judged again here, on the server's clock, atomically (MemoryStore.check). Mirrors core.judge, then
-- core.touch_due / core.touched / core.retention for a valid session; an ended one becomes a
-- tombstone here, atomically, and is returned once so that one audit event is written.
-- Strict mode: an id with neither record nor tombstone causes no write at all. A write
-- rewrites only a record read in this same call, so a request that finishes after a logout
-- cannot bring the session back. It reads only the record's header
-- (records.lua header), takes one key and four arguments, and answers one string.
--
-- KEYS   record '<base>s:<short>' (its tombstone '<base>e:<short>' shares its slot)
-- ARGV   context,
--        use: how this request uses the session: 'p' passive (else active), then the time (ms)
--             of an earlier use by this process that is owed by this time, if any: it counts
--             before the judgement and is written (stores.write_behind),
--        token: 'i' when the token presented carries its issue time (a device-bound session's
--             cookie, DBSC), else '': a device-bound session refuses a token without one
--             (core.refuses_token), and that presentation is not a use,
--        now (ms; '' = the server's TIME),
--        lowered: when limits were last lowered (ms), sent for a session created before then
--             (or soon after) whose user this process has not seen reconciled (core.reconcile_due);
--        trailing empty arguments are left out (scripts.py)
-- returns 'u<reason>'                  unknown: the tombstone's reason ('' = invalid)
--         'v<now>|<written>|<record>'  valid: the record as read (before any write), and the
--                                      last-seen this check wrote ('' = none)
--         'e<reason>|<record>'         ended by this check
--         's<written>'                 valid, but refusing the token presented; <written> is
--                                      an owed use written now ('' = none)
-- With `lowered`, a record found valid first reconciles its user (limits.lua reconcile): the
-- reply is then {answer, mark, id1, record1, ...}: the answer above ('e' 'evicted' when this
-- session was in the surplus), when the user was last reconciled, and the others it ended.
local K, A = KEY.check, ARG.check
local c = context(ARGV[A.context])
local key = KEYS[K.record]
local value = call('GET', key)
if not value then
  return 'u' .. reason_of(call('GET', tombstone_of(key)))
end
local now, now_text, now_tail = clock(ARGV[A.now] or '')
local created, seen, remember, ui, platform, bound = header(value)
local use, passive, written = ARGV[A.use], false, nil
if use and use ~= '' then
  passive = byte(use) == 112  -- 'p'
  local owed_text = passive and sub(use, 2) or use
  local owed = number(owed_text)
  if owed and owed > seen and owed <= now then
    seen, written = owed, owed_text
  end
end
local reason = judge(c, now, key, created, seen, remember, ui, platform)
if reason then
  local rec = parse(key, id_of(key), value)
  rec.l = seen
  finish(c, rec, reason, now)
  return 'e' .. reason .. '|' .. value
end
if ARGV[A.lowered] and ARGV[A.lowered] ~= '' then
  local rec = parse(key, id_of(key), value)
  if written then  -- the owed use counts in the reconciliation (a least-recent eviction)
    rec.l = seen
    keep_index(index_of(rec), store(c, now, rec))
    value = call('GET', key)
  end
  local mark, ended = reconcile(c, now, rec, number(ARGV[A.lowered]))
  local others, answer = {}, nil
  for _, victim in ipairs(ended) do
    if victim.key == key then
      answer = 'eevicted|' .. value
    else
      others[#others + 1], others[#others + 2] = victim.id, victim.value
    end
  end
  if not answer then
    ARGV[A.lowered] = ''  -- reconciled: the check goes on without
    answer = check_function(KEYS, ARGV)
  end
  return {answer, string.format('%.0f', mark or 0), spread(others)}
end
if bound and ARGV[A.token] ~= 'i' then
  if written then
    local rec = parse(key, id_of(key), value)
    rec.l = seen
    keep_index(index_of(rec), store(c, now, rec))
  end
  return 's' .. (written or '')
end
-- an active request that writes anyway writes itself: the latest use
if not passive and (written or now - seen >= touch_interval(c, remember, ui, platform)) then
  seen, written = now, now_text .. now_tail
end
if not written then return 'v' .. now_text .. now_tail .. '||' .. value end
local rec = parse(key, id_of(key), value)
rec.l = seen
keep_index(index_of(rec), store(c, now, rec))
return 'v' .. now_text .. now_tail .. '|' .. written .. '|' .. value
