-- rules.lua: what every function of the library shares. Run once, when the library is loaded
-- (scripts.library puts the generated contract before it and the functions after it). It
-- mirrors sessionguard/core.py rule for rule:
--   idle_limit() = core.idle_limit, retention() = core.retention, judge() = core.judge (with
--   core.timed_out and core.lifetime), deadline_of() = core.sweep_deadline, ended_at() = core.ended_at,
--   touch_interval() = core.touch_interval, evict_first() = core.eviction_order,
--   surplus() = core.surplus, reconcile() = core.reconcile_due then core.surplus,
--   TOMBSTONE_MS, TOUCH_MIN_MS, TOUCH_MAX_MS = core's.
--
-- The context (ARG.<function>.context) is one argument that is the same for every call while
-- the policy and the epoch are: the fields of CONTEXT, '|'-separated (operations.Operations
-- packs it). It is parsed once per distinct value and kept in `contexts` below: a pure cache
-- (the same text always gives the same table), so a call pays one table lookup for it.
--
-- A session record is one string (compact: a hash with a 120-byte user agent is stored as a
-- hashtable, about twice the size; records.decode_record reads it):
--   '<created ms, base 36>|<last seen ms, base 36>|<'r' if remember-me><'b' if device-bound>
--    <user idle s>|<platform code>|<user>|' followed by an opaque tail [ip, city, user agent, device,
--   metadata] that the functions never parse (no cjson round trip can alter the app's metadata).
-- A platform code (records.platform_code) is a built-in's letter (LETTER_OF) or '+<name>.'.
-- <user> is keys.encode_user(user id): the id itself when plain, else '~' + base64url.
-- Keys under the base '<prefix>:{<tag>}:', where <short> is an id without its tag: s:<short>
-- record, e:<short> tombstone ('<reason>|<ended at, base 36>|<the last record>', a day),
-- x:<user> the user's recently ended sessions (zset, scored by when each ended, members as
-- u:<user>'s; a day), u:<user> the user's index (zset, scores 0, members
-- records.user_member: the platform's code then the packed <short>), t:<user> the user's own
-- idle timeouts (hash), k:<short> a device-bound session's key and the challenges it answered
-- (DBSC, a hash: 'key' -> the device's public key as JWK text, each challenge's id -> its issue
-- time in ms; bind.lua), deleted with the record by finish_all(), r:<user> when the user's
-- sessions were last reconciled with lowered limits (ms; reconcile()). Every key derived here
-- shares the slot of the declared keys: the tag is in the base. Messages on the bus
-- '<prefix>:bus': {"drop": [id, ...]} (announce below) and the state (state.lua).

local TOMBSTONE_MS = 86400000
local TOUCH_MIN_MS = 1000
local TOUCH_MAX_MS = 600000
local SETTINGS_MS = 400 * 86400000
local CHALLENGE_MS = 300000  -- core.CHALLENGE_MS
local DEVICE_KEY_MS = 3600000  -- k:<short> outlives its record by the longest cookie lifetime

-- The library's top level runs where Redis offers no globals, not even `string` or `math`: it
-- defines functions and literal tables only (the contract's tables are generated). What the
-- functions call most is bound to these locals at the first call (bind(), from context() and
-- clock()): looking a global up costs Redis about as much as the call itself. Nothing else is
-- kept between calls but the contexts: every call of any function costs Redis more the more
-- the Lua heap holds (a table of 5,000 strings tripled the cost of an empty FCALL).
local call, match, byte, sub, char, number, floor, spread

local function bind()
  if call then return end
  call, match, byte, sub, char = redis.call, string.match, string.byte, string.sub, string.char
  number, floor, spread = tonumber, math.floor, unpack
end

-- keys ---------------------------------------------------------------------------------------
-- A record key is '<base>s:<short>' with the base '<prefix>:{<tag>}:'; the id is <tag><short>.

local function base_of(key)
  return sub(key, 1, -SHORT_LENGTH - 3)
end

local function id_of(key)
  return sub(key, -SHORT_LENGTH - TAG_LENGTH - 4, -SHORT_LENGTH - 5) .. sub(key, -SHORT_LENGTH)
end

-- the tombstone key of a record key
local function tombstone_of(key)
  return base_of(key) .. 'e:' .. sub(key, -SHORT_LENGTH)
end

-- the device key (DBSC) of a record key
local function device_of(key)
  return base_of(key) .. 'k:' .. sub(key, -SHORT_LENGTH)
end

-- core._interval: how far apart (ms) last-seen is written back for an idle limit of `idle` s
local function interval_of(idle)
  if not idle then return TOUCH_MAX_MS end
  return math.min(TOUCH_MAX_MS, math.max(TOUCH_MIN_MS, math.floor(idle * 1000 / 3)))
end

-- the context --------------------------------------------------------------------------------

-- A policy table of the context (per platform) that answers for a platform the context does
-- not name (its sessions' kind was taken out of PLATFORMS) with web's: core.Policy.platform.
-- (Asked only for a value the table lacks: never, unlimited, or an unknown platform.)
local function web_otherwise(t, known)
  return setmetatable(t, {__index = function(self, platform)
    if not known[platform] then return rawget(self, 'web') end
  end})
end

local function parse_context(text)
  local f, at = {}, 1
  for i = 1, #CONTEXT - 1 do
    local bar = string.find(text, '|', at, true)
    if not bar then error('sessionguard: malformed context') end
    f[CONTEXT[i]] = string.sub(text, at, bar - 1)
    at = bar + 1
  end
  f[CONTEXT[#CONTEXT]] = string.sub(text, at)
  local c = {
    epoch_at = tonumber(f.epoch_at), keep_key = false,
    remember = tonumber(f.remember_me_period), allow_user = f.allow_user_timeouts == '1',
    idle = {}, absolute_ms = {}, session_ms = {}, max = {}, interval = {}, known = {},
    on_limit = f.on_limit, evict = f.evict, ceiling = tonumber(f.session_ceiling),
    total = tonumber(f.max_sessions_total),  -- MAX_SESSIONS_TOTAL, nil = unlimited
    enforce = f.enforce ~= '0',  -- ENFORCE=report: timeouts and limits judged, reported, not applied
    prefix = f.prefix, bus = f.prefix .. ':bus', idx = false, dl = false,
    longest_ms = 0,  -- the longest absolute timeout (ms), nil when one is never
  }
  -- the listing index, but on a Cluster (another slot); the sign-out's kept session by its key
  -- and the deadline index (the sweep's order of sessions by deadline), in the same case
  if f.listed == '1' then c.idx, c.dl = f.prefix .. ':idx', f.prefix .. ':dl' end
  if f.epoch_keep ~= '' then
    c.keep_key = f.prefix .. ':{' .. string.sub(f.epoch_keep, 1, TAG_LENGTH) .. '}:s:'
      .. string.sub(f.epoch_keep, TAG_LENGTH + 1)
  end
  c.remember_interval = interval_of(c.remember)
  -- scripts.pack_platforms: 'name,idle,absolute,session lifetime,limit;...'
  local entry = '([^,;]+),([^,;]*),([^,;]*),([^,;]*),([^,;]*)'
  for platform, idle, absolute, lifetime, max in string.gmatch(f.platforms, entry) do
    c.known[platform] = true
    c.idle[platform] = tonumber(idle)
    c.interval[platform] = interval_of(c.idle[platform])
    absolute, lifetime = tonumber(absolute), tonumber(lifetime)
    c.absolute_ms[platform] = absolute and absolute * 1000
    c.session_ms[platform] = lifetime and lifetime * 1000
    c.max[platform] = tonumber(max)
    if not absolute then c.longest_ms = nil end
    if c.longest_ms and absolute * 1000 > c.longest_ms then c.longest_ms = absolute * 1000 end
  end
  for _, t in ipairs({c.idle, c.interval, c.absolute_ms, c.session_ms, c.max}) do
    web_otherwise(t, c.known)
  end
  return c
end

local contexts, cached = {}, 0

local function context(text)
  local c = contexts[text]
  if c then return c end
  bind()
  if cached >= 16 then contexts, cached = {}, 0 end
  c = parse_context(text)
  contexts[text], cached = c, cached + 1
  return c
end

-- The injected test clock, else the server's TIME: now (ms), and now as text for a reply in
-- two parts: '<ms>' and '', or '<s>' and '.<us>' as TIME gives them (records.now_of reads
-- both; formatting a number would cost Redis more than TIME itself).
local function clock(now)
  if not call then bind() end
  if now ~= '' then return number(now), now, '' end
  local t = call('TIME')
  local seconds, micros = t[1], t[2]
  local us = number(micros)
  return number(seconds) * 1000 + (us - us % 1000) / 1000, seconds, '.' .. micros
end

-- ids and members ----------------------------------------------------------------------------

-- a time (ms) in base 36, as records.decode_record reads it (tonumber(s, 36) reads it back)
local function b36(n)
  local s = ''
  repeat
    local d = n % 36
    s = DIGIT[d] .. s
    n = (n - d) / 36
  until n == 0
  return s
end

-- Ids packed 6 bits a character, in the order of the id alphabet (RANK and CHAR, generated
-- from records.ALPHABET: ASCII order, so packed ids sort as the ids do), zero-padded to whole
-- bytes: records.pack_id. Four characters are three bytes.
local function pack_id(text)
  local out = {}
  for i = 1, #text, 4 do
    local a, b, c, d = byte(text, i, i + 3)
    local v = ((RANK[a] * 64 + (b and RANK[b] or 0)) * 64 + (c and RANK[c] or 0)) * 64 + (d and RANK[d] or 0)
    out[#out + 1] = char(floor(v / 65536), floor(v / 256) % 256, v % 256)
  end
  return sub(table.concat(out), 1, math.ceil(#text * 6 / 8))
end

-- The 4 characters of 3 packed bytes, and the short id (22 characters) of a user-index member
-- (records.user_member: the platform's code, then 17 packed bytes).
local function chars(a, b, c)
  return CHAR[floor(a / 4)] .. CHAR[a % 4 * 16 + floor(b / 16)] .. CHAR[b % 16 * 4 + floor(c / 64)] .. CHAR[c % 64]
end

local function short_of(member)
  local b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15, b16, b17 = byte(member, -17, -1)
  return chars(b1, b2, b3) .. chars(b4, b5, b6) .. chars(b7, b8, b9) .. chars(b10, b11, b12)
    .. chars(b13, b14, b15) .. CHAR[floor(b16 / 4)] .. CHAR[b16 % 4 * 16 + floor(b17 / 16)]
end

-- records.platform_code: how a record and the user index write a platform
local function code_of(platform)
  return LETTER_OF[platform] or EXTRA_CODE .. platform .. EXTRA_END
end

-- records.user_member of a record (its own, when it came from the index)
local function member_of(rec)
  return rec.member or code_of(rec.p) .. pack_id(sub(rec.id, TAG_LENGTH + 1))
end

-- Members of the listing index (records.idx_member), newest login first in lexical order:
-- 6 bytes of inverted login time, big-endian, then the packed id: 26 bytes. (A tag packs into
-- 3 bytes, so a packed id is the packed tag, then the user-index member's packed short id.)
local INVERT = 281474976710655  -- 2^48 - 1

-- the position before every member of sessions created at 'created' (records.idx_bound)
local function idx_bound(created)
  local n = INVERT - created
  local b6 = n % 256
  n = (n - b6) / 256
  local b5 = n % 256
  n = (n - b5) / 256
  local b4 = n % 256
  n = (n - b4) / 256
  local b3 = n % 256
  n = (n - b3) / 256
  local b2 = n % 256
  return char((n - b2) / 256, b2, b3, b4, b5, b6)
end

local function idx_member(rec)
  return idx_bound(rec.c) .. pack_id(rec.id)
end

-- the record ---------------------------------------------------------------------------------

-- What the rules read of a record: created, last seen, remember-me, the user's own idle
-- timeout, the platform and whether it is device-bound (the request path's check reads no more
-- than this: the flags are looked at only when there are any, so an ordinary record pays nothing
-- for the 'b', nor a built-in platform for the extra ones); then, for a rewrite, the created and
-- last-seen texts and where the platform's code is.
local function header(value)
  local cs, ls, flags, at = match(value, '^(%w+)|(%w+)|([^|]*)|()')
  local platform = at and PLATFORM_OF_BYTE[byte(value, at)]
  if not platform and at then platform = match(value, '^%+([%w_]+)%.|', at) end  -- '+<name>.'
  if not platform then error('sessionguard: unreadable session record') end
  local remember, bound, ui = false, false, nil
  if flags ~= '' then
    remember = byte(flags) == 114  -- 'r'
    if remember then flags = sub(flags, 2) end
    if byte(flags) == 98 then bound, flags = true, sub(flags, 2) end  -- 'b'
    ui = number(flags)
  end
  return number(cs, 36), number(ls, 36), remember, ui, platform, bound, cs, ls, at
end

-- A record as a table: its key, id and value, the header's fields, and `member` when it came
-- from the user's index. Its user (keys.encode_user) is read by user_of().
local function parse(key, id, value, member)
  local c, l, r, ui, p, b, cs, ls, at = header(value)
  return {key = key, id = id, value = value, member = member, c = c, l = l, r = r, ui = ui, p = p,
          b = b, cs = cs, ls = ls, read_l = l, at = at}
end

local function user_of(rec)
  if not rec.u then rec.u = match(rec.value, '^[^|]*', rec.at + #code_of(rec.p) + 1) end
  return rec.u
end

-- The record as stored: the header, then the platform, the user and the tail as they were
-- (from `rec.value`), or a new `tail` (a new record has no value: its user is `rec.u`).
local function encode(rec, tail)
  local flags = ''
  if rec.r then flags = 'r' end
  if rec.b then flags = flags .. 'b' end
  if rec.ui then flags = flags .. rec.ui end
  local head = (rec.cs or b36(rec.c)) .. '|' .. (rec.l == rec.read_l and rec.ls or b36(rec.l)) .. '|' .. flags
  if not tail then return head .. sub(rec.value, rec.at - 1) end
  return head .. '|' .. code_of(rec.p) .. '|' .. user_of(rec) .. '|' .. tail
end

-- the rules ----------------------------------------------------------------------------------

-- core.idle_limit (s; nil = never)
local function idle_limit(c, remember, ui, platform)
  if remember then return c.remember end
  if c.allow_user and ui then return ui > 0 and ui or nil end  -- 0: core.NEVER_IDLE
  return c.idle[platform]
end

-- core.lifetime (ms; nil = no limit): the absolute timeout, else the session timeout
local function lifetime_ms(c, remember, platform)
  if remember then return c.absolute_ms[platform] end
  return c.session_ms[platform]
end

-- core.judge: nil when valid, else the reason. The session is known by its record key (the
-- sign-out of everyone keeps the session whose key is c.keep_key). Under ENFORCE=report only
-- a sign-out of everyone ends a session; retention (below) still follows the timeouts. Of two
-- timeouts passed, the one whose deadline came first (core.timed_out; absolute on a tie).
local function judge(c, now, key, created, seen, remember, ui, platform)
  if created < c.epoch_at and key ~= c.keep_key then return 'signout_all' end
  if not c.enforce then return nil end  -- ENFORCE=report: the store reports the timeouts (core.would_end)
  local absolute = lifetime_ms(c, remember, platform)
  local idle = idle_limit(c, remember, ui, platform)
  if idle then
    local idle_end = seen + idle * 1000
    if now >= idle_end and not (absolute and created + absolute <= idle_end) then return 'idle_timeout' end
  end
  if absolute and now >= created + absolute then return 'absolute_timeout' end
  return nil
end

local function judge_record(c, now, rec)
  return judge(c, now, rec.key, rec.c, rec.l, rec.r, rec.ui, rec.p)
end

-- core.touch_interval (ms), the context's where the policy decides it
local function touch_interval(c, remember, ui, platform)
  if remember then return c.remember_interval end
  if c.allow_user and ui then return interval_of(ui > 0 and ui or nil) end
  return c.interval[platform]
end

-- core.sweep_deadline: the deadline (ms) the policy's timeouts give the record, applied or not
-- (nil = never)
local function deadline_of(c, rec)
  local idle, absolute = idle_limit(c, rec.r, rec.ui, rec.p), lifetime_ms(c, rec.r, rec.p)
  local ends = nil
  if idle then ends = rec.l + idle * 1000 end
  if absolute and (not ends or rec.c + absolute < ends) then ends = rec.c + absolute end
  return ends
end

-- core.retention (ms from now; nil = no expiry), from core.deadline
local function retention(c, now, rec)
  local ends = deadline_of(c, rec)
  if not ends then return nil end
  return math.max(ends - now, 0) + TOMBSTONE_MS
end

-- core.ended_at: when the record ended for `reason`, noticed at `now`
local function ended_at(c, now, rec, reason)
  if reason == 'idle_timeout' or reason == 'absolute_timeout' then
    local ends = deadline_of(c, rec)
    if ends and ends < now then return ends end
    return now
  end
  if reason == 'signout_all' and c.epoch_at > 0 then return math.min(c.epoch_at - 1, now) end
  return now
end

-- the reason a tombstone carries ('' for none): '<reason>|<ended at>|<record>'
local function reason_of(tombstone)
  if not tombstone then return '' end
  return match(tombstone, '^[^|]*')
end

-- core.eviction_order: sorts `recs` in place, the first to evict first
local function evict_first(c, recs)
  if c.evict == 'least_recent' then
    table.sort(recs, function(a, b)
      if a.l ~= b.l then return a.l < b.l end
      if a.c ~= b.c then return a.c < b.c end
      return a.id < b.id
    end)
  else
    table.sort(recs, function(a, b)
      if a.c ~= b.c then return a.c < b.c end
      return a.id < b.id
    end)
  end
end

-- writes -------------------------------------------------------------------------------------

local function index_of(rec)
  return base_of(rec.key) .. 'u:' .. user_of(rec)
end

-- The user's index lives at least as long as the longest-kept of its records. A write of a
-- record that would outlive it extends it, by a day more than needed, so that the touches of
-- the next day need no write here (PTTL is a read); a persistent index stays persistent.
local function keep_index(index, keep)
  if not keep then
    call('PERSIST', index)
    return
  end
  local ttl = call('PTTL', index)
  if ttl >= 0 and ttl < keep then call('PEXPIRE', index, keep + TOMBSTONE_MS) end
end

-- write a record with its retention (MemoryStore._put); never called on a record that is not
-- known to exist and be valid in this same call: no resurrection. Returns the retention.
local function store(c, now, rec, tail)
  local keep = retention(c, now, rec)
  if keep then
    call('SET', rec.key, encode(rec, tail), 'PX', keep)
  else
    call('SET', rec.key, encode(rec, tail))
  end
  return keep
end

-- MemoryStore._end for each record of `recs` (all of one user), with its `reason`, noticed at
-- `now`: it becomes a tombstone carrying the reason, when it ended (core.ended_at) and the record
-- (what a listing of ended sessions shows, for a day), leaves the user's index for the user's
-- recently ended (x:<user>) and the deadline index; a device-bound one's key goes too. Its
-- listing-index entry stays while the tombstone does (the listing's sweep removes it then).
local function finish_all(c, recs, now)
  if #recs == 0 then return end
  local keys, members, ended, due = {}, {}, {}, {}
  local base = base_of(recs[1].key)
  for i, rec in ipairs(recs) do
    keys[#keys + 1], members[i] = rec.key, member_of(rec)
    if rec.b then keys[#keys + 1] = device_of(rec.key) end
    local at = ended_at(c, now, rec, rec.reason)
    ended[#ended + 1], ended[#ended + 2] = at, members[i]
    if c.dl then due[i] = pack_id(rec.id) end
    call('SET', base .. 'e:' .. sub(rec.key, -SHORT_LENGTH), rec.reason .. '|' .. b36(at) .. '|' .. encode(rec),
         'PX', TOMBSTONE_MS)
  end
  call('DEL', spread(keys))
  call('ZREM', index_of(recs[1]), spread(members))
  local recent = base .. 'x:' .. user_of(recs[1])
  call('ZADD', recent, spread(ended))
  call('ZREMRANGEBYSCORE', recent, '-inf', '(' .. (now - TOMBSTONE_MS))
  call('PEXPIRE', recent, TOMBSTONE_MS)
  if c.dl then call('ZREM', c.dl, spread(due)) end
end

local function finish(c, rec, reason, now)
  rec.reason = reason
  finish_all(c, {rec}, now)
end

-- LOCAL_CACHE: every process drops these sessions from its cache of valid checks at once
-- (state.StateCache.announced); sent by the functions that end sessions or change them
local function announce(c, ids)
  if #ids > 0 then call('PUBLISH', c.bus, cjson.encode({drop = ids})) end
end

-- The valid records among the user-index `members` of the user whose keys start with `base`
-- (MemoryStore._user_records); when `prune`, a member whose record is gone leaves the index
-- and an ended record becomes a tombstone (with its reason).
local function records_of(c, now, base, index, members, prune)
  if #members == 0 then return {} end
  local tag, keys = sub(base, -TAG_LENGTH - 2, -3), {}
  for i, member in ipairs(members) do keys[i] = base .. 's:' .. short_of(member) end
  local values = call('MGET', spread(keys))
  local alive, gone, ended = {}, {}, {}
  for i, member in ipairs(members) do
    local value = values[i]
    if not value then
      gone[#gone + 1] = member
    else
      local key = keys[i]
      local rec = parse(key, tag .. sub(key, -SHORT_LENGTH), value, member)
      rec.reason = judge_record(c, now, rec)
      if not rec.reason then
        alive[#alive + 1] = rec
      else
        ended[#ended + 1] = rec
      end
    end
  end
  if prune then
    -- a session a sign-out of everyone ended becomes a tombstone; one that timed out only
    -- leaves the index: the sweep (or a request) notices it and records its one audit event
    local finished = {}
    for _, rec in ipairs(ended) do
      if rec.reason == 'signout_all' then finished[#finished + 1] = rec else gone[#gone + 1] = rec.member end
    end
    if #gone > 0 then call('ZREM', index, spread(gone)) end
    finish_all(c, finished, now)
  end
  return alive
end

-- The lexical range of the user-index members of the platform written `code` (code_of)
local function code_range(code)
  return '[' .. code, '(' .. sub(code, 1, -2) .. char(byte(code, -1) + 1)
end

-- One page of a user's index: up to `count` members after `after` ('' = from the start) within
-- the platform `code` ('' = every platform), and the cursor to go on from ('' = the end).
local function page_of(index, after, count, code)
  local low, high = '-', '+'
  if code ~= '' then low, high = code_range(code) end
  if after ~= '' then low = '(' .. after end
  local members = call('ZRANGE', index, low, high, 'BYLEX', 'LIMIT', 0, count)
  local cursor = ''
  if #members == count then cursor = members[#members] end
  return members, cursor
end

-- the deadline index (the sweep's): `rec` placed at its deadline, or out of it without one
local function place(c, rec)
  if not c.dl then return end
  local ends = deadline_of(c, rec)
  if ends then
    call('ZADD', c.dl, ends, pack_id(rec.id))
  else
    call('ZREM', c.dl, pack_id(rec.id))
  end
end

-- drop listing-index entries older than any session can live (the longest absolute timeout
-- plus the tombstone day); the store's sweep (listing.sweep_step) removes the others once
-- their record is gone, whatever the policy
local function prune_idx(c, now)
  -- (under ENFORCE=report a session outlives its absolute timeout while it is used)
  if not c.idx or not c.longest_ms or not c.enforce then return end
  local cutoff = now - c.longest_ms - TOMBSTONE_MS
  call('ZREMRANGEBYLEX', c.idx, '[' .. idx_bound(cutoff - 1), '+')
end

-- device binding (DBSC) --------------------------------------------------------------------

-- core.redeemable for one challenge issued at `issued` (ms), given whether the session's
-- k:<short> hash holds it already (answered before)
local function redeemable(now, issued, used)
  return issued <= now + CHALLENGE_MS and now - issued <= CHALLENGE_MS and not used
end

-- k:<short> lives as long as the record, and DEVICE_KEY_MS more: the record's expiry moves with
-- every touch, and a bound session refreshes within its cookie lifetime while in use
-- (finish_all() deletes it with the record)
local function keep_device_key(rec)
  local ttl, device = call('PTTL', rec.key), device_of(rec.key)
  if ttl < 0 then
    call('PERSIST', device)
  else
    call('PEXPIRE', device, ttl + DEVICE_KEY_MS)
  end
end

-- lowered limits ----------------------------------------------------------------------------

-- core.surplus: of a user's valid sessions `alive`, those beyond the lowered limits: on each
-- platform those beyond its limit, then among the rest those beyond the total, first in
-- core.eviction_order; none under ENFORCE=report
local function surplus(c, alive)
  local ended, gone = {}, {}
  if not c.enforce then return ended end
  local by_platform = {}
  for _, rec in ipairs(alive) do
    by_platform[rec.p] = by_platform[rec.p] or {}
    table.insert(by_platform[rec.p], rec)
  end
  for platform, same in pairs(by_platform) do
    local limit = c.max[platform]
    if limit and #same > limit then
      evict_first(c, same)
      for i = 1, #same - limit do ended[#ended + 1], gone[same[i].id] = same[i], true end
    end
  end
  if c.total then
    local rest = {}
    for _, rec in ipairs(alive) do
      if not gone[rec.id] then rest[#rest + 1] = rec end
    end
    if #rest > c.total then
      evict_first(c, rest)
      for i = 1, #rest - c.total do ended[#ended + 1] = rest[i] end
    end
  end
  return ended
end

-- core.reconcile_due, then core.surplus: the presented record `rec` (valid) was created before
-- limits were lowered at `lowered` (or soon after). Unless its user's sessions were reconciled
-- since (r:<user>, in the user's slot), they are now: when the index's counts exceed a limit,
-- the records are read and pruned (records_of) and the surplus ends ('evicted', announced);
-- either way r:<user> says when, as long as the user's index lives. Reads every record of a
-- user over a limit in this one call: SESSION_CEILING bounds them. Returns the mark (when the
-- user was last reconciled) and the ended records.
local function reconcile(c, now, rec, lowered)
  local base, user = base_of(rec.key), user_of(rec)
  local mark_key, index = base .. 'r:' .. user, base .. 'u:' .. user
  local mark = number(call('GET', mark_key) or '')
  if rec.c >= lowered + LIMITS_GRACE_MS or (mark and mark > lowered and mark > rec.c) then
    return mark, {}
  end
  -- the index's counts (ended sessions not pruned yet included) tell whether any limit may be
  -- exceeded: only then are the user's records read (as core.admission_needs_count at a login)
  local over, all = false, call('ZCARD', index)
  if c.enforce then
    over = c.total and all > c.total
    local listed = 0  -- members of the configured platforms
    for platform in pairs(c.known) do
      if over then break end
      local held = call('ZLEXCOUNT', index, code_range(code_of(platform)))
      over, listed = c.max[platform] and held > c.max[platform], listed + held
    end
    -- a kind taken out of PLATFORMS follows web's limit (core.Policy.platform)
    over = over or (rawget(c.max, 'web') and all > listed)
  end
  local ended, ids = {}, {}
  if over then ended = surplus(c, records_of(c, now, base, index, call('ZRANGE', index, 0, -1), true)) end
  for i, victim in ipairs(ended) do victim.reason, ids[i] = 'evicted', victim.id end
  finish_all(c, ended, now)
  announce(c, ids)
  local ttl = call('PTTL', index)
  if ttl > 0 then
    call('SET', mark_key, string.format('%.0f', now), 'PX', ttl)
  elseif ttl == -1 then
    call('SET', mark_key, string.format('%.0f', now))
  end
  return now, ended
end
