-- rules.lua: what every function of the library shares. Run once, when the library is loaded
-- (scripts.library puts the generated contract before it and the functions after it). It
-- mirrors sessionguard/core.py rule for rule:
--   idle_limit() = core.idle_limit, retention() = core.retention, judge() = core.judge,
--   touch_interval() = core.touch_interval, evict_first() = core.eviction_order,
--   TOMBSTONE_MS, TOUCH_MIN_MS, TOUCH_MAX_MS = core's.
--
-- The context (ARG.<function>.context) is one argument that is the same for every call while
-- the policy and the epoch are: the fields of CONTEXT, '|'-separated (operations.Operations
-- packs it). It is parsed once per distinct value and kept in `contexts` below: a pure cache
-- (the same text always gives the same table), so a call pays one table lookup for it.
--
-- A session record is one string (compact: a hash with a 120-byte user agent is stored as a
-- hashtable, about twice the size; records.decode_record reads it):
--   '<created ms, base 36>|<last seen ms, base 36>|<'r' if remember-me><user idle s>|
--    <platform letter>|<user>|' followed by an opaque tail [ip, city, user agent, device,
--   metadata] that the functions never parse (no cjson round trip can alter the app's metadata).
-- <user> is keys.encode_user(user id): the id itself when plain, else '~' + base64url.
-- Keys under the base '<prefix>:{<tag>}:', where <short> is an id without its tag: s:<short>
-- record, e:<short> tombstone (reason), u:<user> the user's index (zset, scores 0, members
-- records.user_member: the platform's letter then the packed <short>), t:<user> the user's own
-- idle timeouts (hash). Every key derived here shares the slot of the declared keys: the tag is
-- in the base. Messages on the bus '<prefix>:bus': {"drop": [id, ...]} (announce below) and the
-- state (state.lua).

local TOMBSTONE_MS = 86400000
local TOUCH_MIN_MS = 1000
local TOUCH_MAX_MS = 600000
local SETTINGS_MS = 400 * 86400000
-- The library's top level runs where Redis offers no globals, not even `string` or `math`: it
-- defines functions and literal tables only (the contract's tables are generated). The library
-- functions the request path calls are bound to these locals at the first call (context()
-- does it): a global's lookup costs Redis about as much as the call itself.
local call, match, byte, sub, number, floor

local function bind()
  call, match, byte, sub, number, floor = redis.call, string.match, string.byte, string.sub, tonumber, math.floor
end

-- keys ---------------------------------------------------------------------------------------
-- A record key is '<base>s:<short>' with the base '<prefix>:{<tag>}:'; the id is <tag><short>.

local function base_of(key)
  return string.sub(key, 1, -SHORT_LENGTH - 3)
end

local function id_of(key)
  return string.sub(key, -SHORT_LENGTH - TAG_LENGTH - 4, -SHORT_LENGTH - 5) .. string.sub(key, -SHORT_LENGTH)
end

-- the tombstone key of a record key
local function tombstone_of(key)
  return base_of(key) .. 'e:' .. string.sub(key, -SHORT_LENGTH)
end

-- core._interval: how far apart (ms) last-seen is written back for an idle limit of `idle` s
local function interval_of(idle)
  if not idle then return TOUCH_MAX_MS end
  return math.min(TOUCH_MAX_MS, math.max(TOUCH_MIN_MS, math.floor(idle * 1000 / 3)))
end

-- the context --------------------------------------------------------------------------------

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
    idle = {}, absolute_ms = {}, max = {}, interval = {},
    on_limit = f.on_limit, evict = f.evict, ceiling = tonumber(f.session_ceiling),
    prefix = f.prefix, bus = f.prefix .. ':bus', idx = false,
    longest_ms = 0,  -- the longest absolute timeout (ms), nil when one is never
  }
  -- the listing index, but on a Cluster (another slot); the sign-out's kept session by its key
  if f.listed == '1' then c.idx = f.prefix .. ':idx' end
  if f.epoch_keep ~= '' then
    c.keep_key = f.prefix .. ':{' .. string.sub(f.epoch_keep, 1, TAG_LENGTH) .. '}:s:'
      .. string.sub(f.epoch_keep, TAG_LENGTH + 1)
  end
  c.remember_interval = interval_of(c.remember)
  for platform in pairs(LETTER_OF) do
    c.idle[platform] = tonumber(f[platform .. '_idle_timeout'])
    c.interval[platform] = interval_of(c.idle[platform])
    local absolute = tonumber(f[platform .. '_absolute_timeout'])
    c.absolute_ms[platform] = absolute and absolute * 1000
    c.max[platform] = tonumber(f[platform .. '_max_sessions'])
    if not absolute then c.longest_ms = nil end
    if c.longest_ms and absolute * 1000 > c.longest_ms then c.longest_ms = absolute * 1000 end
  end
  return c
end

local contexts, cached = {}, 0

local function context(text)
  local c = contexts[text]
  if c then return c end
  if not call then bind() end
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
  return seconds * 1000 + (micros - micros % 1000) / 1000, seconds, '.' .. micros
end

-- ids and members ----------------------------------------------------------------------------

local function int(n)
  return string.format('%.0f', n)
end

local DIGITS = '0123456789abcdefghijklmnopqrstuvwxyz'
-- a time (ms) in base 36, as records.decode_record reads it (tonumber(s, 36) reads it back)
local function b36(n)
  local s = ''
  repeat
    local d = n % 36
    s = string.sub(DIGITS, d + 1, d + 1) .. s
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
    local a, b, c, d = string.byte(text, i, i + 3)
    local v = ((RANK[a] * 64 + (b and RANK[b] or 0)) * 64 + (c and RANK[c] or 0)) * 64 + (d and RANK[d] or 0)
    out[#out + 1] = string.char(math.floor(v / 65536), math.floor(v / 256) % 256, v % 256)
  end
  return string.sub(table.concat(out), 1, math.ceil(#text * 6 / 8))
end

local function unpack_id(packed, count, from)
  local out = {}
  for i = from, #packed, 3 do
    local a, b, c = string.byte(packed, i, i + 2)
    local v = (a * 256 + (b or 0)) * 256 + (c or 0)
    out[#out + 1] = CHAR[math.floor(v / 262144)] .. CHAR[math.floor(v / 4096) % 64]
      .. CHAR[math.floor(v / 64) % 64] .. CHAR[v % 64]
  end
  return string.sub(table.concat(out), 1, count)
end

-- records.user_member: the platform's letter, then the id without its tag, packed
local function user_member(rec)
  return LETTER_OF[rec.p] .. pack_id(string.sub(rec.id, TAG_LENGTH + 1))
end

-- Members of the listing index (records.idx_member), newest login first in lexical order:
-- 6 bytes of inverted login time, big-endian, then the packed id: 26 bytes.
local INVERT = 281474976710655  -- 2^48 - 1

-- the position before every member of sessions created at 'created' (records.idx_bound)
local function idx_bound(created)
  local n, bytes = INVERT - created, {}
  for i = 6, 1, -1 do
    local b = n % 256
    bytes[i] = string.char(b)
    n = (n - b) / 256
  end
  return table.concat(bytes)
end

local function idx_member(rec)
  return idx_bound(rec.c) .. pack_id(rec.id)
end

-- the record ---------------------------------------------------------------------------------

-- What the rules read of a record: created, last seen, remember-me, the user's own idle
-- timeout and the platform. (The request path's check reads no more than this.)
local function header(value)
  local c, l, flags, at = match(value, '^(%w+)|(%w+)|([^|]*)|()')
  local platform = at and PLATFORM_OF_BYTE[byte(value, at)]
  if not platform then error('sessionguard: unreadable session record') end
  local remember, ui = false, nil
  if flags ~= '' then
    remember = byte(flags) == 114  -- 'r'
    ui = number(remember and sub(flags, 2) or flags)
  end
  return number(c, 36), number(l, 36), remember, ui, platform
end

-- The whole record as a table: the header's fields, the user, and where the tail starts (the
-- tail is kept as it is). `key` is the record's key, `id` its session id.
local function parse(key, id, value)
  local c, l, r, ui, p = header(value)
  local u, rest = string.match(value, '^[^|]*|[^|]*|[^|]*|[^|]*|([^|]*)|()')
  return {key = key, id = id, c = c, l = l, r = r, ui = ui, p = p, u = u, value = value, rest = rest}
end

local function encode(rec, tail)
  local flags = ''
  if rec.r then flags = 'r' end
  if rec.ui then flags = flags .. int(rec.ui) end
  return b36(rec.c) .. '|' .. b36(rec.l) .. '|' .. flags .. '|' .. LETTER_OF[rec.p] .. '|' .. rec.u
    .. '|' .. (tail or string.sub(rec.value, rec.rest))
end

-- the rules ----------------------------------------------------------------------------------

-- core.idle_limit (s)
local function idle_limit(c, remember, ui, platform)
  if remember then return c.remember end
  if c.allow_user and ui then return ui end
  return c.idle[platform]
end

-- core.judge: nil when valid, else the reason. The session is known by its record key (the
-- sign-out of everyone keeps the session whose key is c.keep_key).
local function judge(c, now, key, created, seen, remember, ui, platform)
  if created < c.epoch_at and key ~= c.keep_key then return 'signout_all' end
  local absolute = c.absolute_ms[platform]
  if absolute and now >= created + absolute then return 'absolute_timeout' end
  local idle = idle_limit(c, remember, ui, platform)
  if idle and now >= seen + idle * 1000 then return 'idle_timeout' end
  return nil
end

local function judge_record(c, now, rec)
  return judge(c, now, rec.key, rec.c, rec.l, rec.r, rec.ui, rec.p)
end

-- core.touch_interval (ms), the context's where the policy decides it
local function touch_interval(c, remember, ui, platform)
  if remember then return c.remember_interval end
  if c.allow_user and ui then return interval_of(ui) end
  return c.interval[platform]
end

-- core.retention (ms from now; nil = no expiry), from core.deadline
local function retention(c, now, rec)
  local idle, absolute = idle_limit(c, rec.r, rec.ui, rec.p), c.absolute_ms[rec.p]
  local ends = nil
  if idle then ends = rec.l + idle * 1000 end
  if absolute and (not ends or rec.c + absolute < ends) then ends = rec.c + absolute end
  if not ends then return nil end
  return math.max(ends - now, 0) + TOMBSTONE_MS
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

-- The user's index lives at least as long as the longest-kept of its records: every write of
-- a record extends it (GT: never shortens it, and keeps a persistent one persistent).
local function keep_index(index, keep)
  if keep then redis.call('PEXPIRE', index, int(keep), 'GT') else redis.call('PERSIST', index) end
end

-- write a record with its retention (MemoryStore._put), and extend its user's index; never
-- called on a record that is not known to exist and be valid in this same call: no resurrection
local function store(c, now, rec, tail)
  local keep = retention(c, now, rec)
  if keep then
    redis.call('SET', rec.key, encode(rec, tail), 'PX', int(keep))
  else
    redis.call('SET', rec.key, encode(rec, tail))
  end
  return keep
end

local function index_of(rec)
  return base_of(rec.key) .. 'u:' .. rec.u
end

-- MemoryStore._end: the record becomes a tombstone carrying the reason, and leaves both indexes
local function finish(c, rec, reason)
  redis.call('DEL', rec.key)
  redis.call('SET', tombstone_of(rec.key), reason, 'PX', TOMBSTONE_MS)
  redis.call('ZREM', index_of(rec), user_member(rec))
  if c.idx then redis.call('ZREM', c.idx, idx_member(rec)) end
end

-- LOCAL_CACHE: every process drops these sessions from its cache of valid checks at once
-- (state.StateCache.announced); sent by the functions that end sessions or change them
local function announce(c, ids)
  if #ids > 0 then redis.call('PUBLISH', c.bus, cjson.encode({drop = ids})) end
end

-- The valid records among the user-index `members` of the user whose keys start with `base`
-- (MemoryStore._user_records): a member whose record is gone leaves the index, and an ended
-- record becomes a tombstone (when `prune`).
local function records_of(c, now, base, index, members, prune)
  local alive, tag = {}, string.sub(base, -TAG_LENGTH - 2, -3)
  for _, member in ipairs(members) do
    local short = unpack_id(member, SHORT_LENGTH, 2)
    local key = base .. 's:' .. short
    local value = redis.call('GET', key)
    if not value then
      if prune then redis.call('ZREM', index, member) end
    else
      local rec = parse(key, tag .. short, value)
      local reason = judge_record(c, now, rec)
      if not reason then
        alive[#alive + 1] = rec
      elseif prune then
        finish(c, rec, reason)
      end
    end
  end
  return alive
end

-- One page of a user's index: up to `count` members after `after` ('' = from the start) within
-- the platform `letter` ('' = every platform), and the cursor to go on from ('' = the end).
local function page_of(index, after, count, letter)
  local low, high = '-', '+'
  if letter ~= '' then
    low, high = '[' .. letter, '(' .. string.char(string.byte(letter) + 1)
  end
  if after ~= '' then low = '(' .. after end
  local members = redis.call('ZRANGE', index, low, high, 'BYLEX', 'LIMIT', 0, count)
  local cursor = ''
  if #members == count then cursor = members[#members] end
  return members, cursor
end

-- drop listing-index entries older than any session can live (the longest absolute timeout
-- plus the tombstone day); the store's sweep (listing.sweep_step) removes the others once
-- their record is gone, whatever the policy
local function prune_idx(c, now)
  if not c.idx or not c.longest_ms then return end
  local cutoff = now - c.longest_ms - TOMBSTONE_MS
  redis.call('ZREMRANGEBYLEX', c.idx, '[' .. idx_bound(cutoff - 1), '+')
end
