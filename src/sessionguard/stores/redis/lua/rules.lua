-- rules.lua: the prelude every session script starts with (sessionguard.stores.clients
-- prepends it when it loads check.lua, create.lua, end.lua, end_user.lua, list_user.lua,
-- rotate.lua, set_tails.lua and set_user_timeouts.lua). It mirrors sessionguard/core.py rule for rule:
--   idle_limit() = core.idle_limit, deadline() = core.deadline, judge() = core.judge,
--   touch_interval() = core.touch_interval, retention() = core.retention,
--   TOMBSTONE_MS = core.TOMBSTONE_MS, TOUCH_MIN_MS / TOUCH_MAX_MS = core's.
--
-- ARGV[1..19] is the context every session script receives (operations._session_script);
-- 1..17 are the same for every call while the state and policy are (lane.Encoder packs them once):
--   1 epoch at (ms), 2 epoch keep (id or ''), 3 remember-me period (s or '' = never),
--   4 allow user timeouts ('1'/'0'), 5..13 web/mobile/desktop idle (s), absolute (s), max
--   sessions ('' = never/unlimited), 14 on_limit, 15 evict order, 16 KEY_PREFIX, 17 '1' when
--   the last KEYS entry is the global listing index '<prefix>:idx' (never on a Cluster, where
--   it lives in another slot); then 18 now (ms; '' = read the server's TIME) and 19 the user's
--   slot tag (the key base is '<prefix>:{<tag>}:', as keys.Keys.base).
-- A script's own arguments start at ARGV[20].
--
-- A session record is one string (compact: a hash with a 120-byte user agent is stored as a
-- hashtable, about twice the size; keys.decode_record reads it):
--   '<created ms, base 36>|<last seen ms, base 36>|<'r' if remember-me><user idle s>|
--    <platform w/m/d>|<user>|' followed by an opaque tail [ip, city, user agent, device,
--   metadata] that the scripts never parse (no cjson round trip can alter the app's metadata).
-- <user> is keys.encode_user(user id): the id itself when plain, else '~' + base64url.
-- Messages on the bus: {"drop": [id, ...]} (announce below) and the state (state.lua).
-- Keys under the base, where <short> is an id without its tag (the tag is in the base):
-- s:<short> record, e:<short> tombstone (reason), u:<user> the user's index (zset of packed
-- <short>, scores 0: a small listpack), t:<user> the user's own idle timeouts (hash).
-- Every key derived here shares the slot of the declared keys: the tag is in the base.

local TOMBSTONE_MS = 86400000
local TOUCH_MIN_MS = 1000
local TOUCH_MAX_MS = 600000
local SETTINGS_MS = 400 * 86400000

local NOW
if ARGV[18] ~= '' then
  NOW = tonumber(ARGV[18])
else
  local t = redis.call('TIME')
  NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local EPOCH_AT = tonumber(ARGV[1])
local EPOCH_KEEP = ARGV[2]
local REMEMBER = tonumber(ARGV[3])
local ALLOW_USER = ARGV[4] == '1'
-- a platform's limits are read from ARGV when asked (a request needs one platform's, and this
-- prelude runs on every call: it builds no table it may not need)
local LIMITS_AT = {web = 5, mobile = 8, desktop = 11}
local function idle_of(platform) return tonumber(ARGV[LIMITS_AT[platform]]) end
local function absolute_of(platform) return tonumber(ARGV[LIMITS_AT[platform] + 1]) end
local function max_of(platform) return tonumber(ARGV[LIMITS_AT[platform] + 2]) end
local ON_LIMIT = ARGV[14]
local EVICT = ARGV[15]
local TAG = ARGV[19]
local BASE = ARGV[16] .. ':{' .. TAG .. '}:'
-- the pub/sub channel every process listens on (keys.Keys.bus); not a key
local BUS = ARGV[16] .. ':bus'
local IDX = nil
if ARGV[17] == '1' then IDX = KEYS[#KEYS] end

local function int(n)
  return string.format('%.0f', n)
end

local DIGITS = '0123456789abcdefghijklmnopqrstuvwxyz'
-- a time (ms) in base 36, as keys.decode_record reads it (tonumber(s, 36) reads it back)
local function b36(n)
  local s = ''
  repeat
    local d = n % 36
    s = string.sub(DIGITS, d + 1, d + 1) .. s
    n = (n - d) / 36
  until n == 0
  return s
end

local PLATFORM_OF = {w = 'web', m = 'mobile', d = 'desktop'}
local LETTER_OF = {web = 'w', mobile = 'm', desktop = 'd'}

-- the key of a session's record ('s:') or tombstone ('e:'): the id without its tag
local function key(kind, id)
  return BASE .. kind .. string.sub(id, 5)
end

-- Ids packed 6 bits a character, in the order of ALPHABET (ASCII order, so packed ids sort
-- as the ids do): keys.pack_id. The user index holds the 22 characters after the tag
-- so (17 bytes: one session's index fits the smallest listpack), the listing index all 26.
local ALPHABET = '-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz'
local RANK = nil  -- built at the first pack_id: a plain check never packs

local function pack_id(text)
  if not RANK then
    RANK = {}
    for i = 1, 64 do RANK[string.byte(ALPHABET, i)] = i - 1 end
  end
  local out, acc, bits = {}, 0, 0
  for i = 1, #text do
    acc, bits = acc * 64 + RANK[string.byte(text, i)], bits + 6
    if bits >= 8 then
      bits = bits - 8
      local b = math.floor(acc / 2 ^ bits)
      out[#out + 1] = string.char(b)
      acc = acc - b * 2 ^ bits
    end
  end
  if bits > 0 then out[#out + 1] = string.char(acc * 2 ^ (8 - bits)) end
  return table.concat(out)
end

local function unpack_id(packed, count)
  local out, acc, bits, i = {}, 0, 0, 1
  while #out < count do
    if bits < 6 then
      acc, bits, i = acc * 256 + string.byte(packed, i), bits + 8, i + 1
    end
    bits = bits - 6
    local v = math.floor(acc / 2 ^ bits)
    out[#out + 1] = string.sub(ALPHABET, v + 1, v + 1)
    acc = acc - v * 2 ^ bits
  end
  return table.concat(out)
end

-- the user-index member of a session
local function user_member(id)
  return pack_id(string.sub(id, 5))
end

local function parse(id, value)
  local c, l, r, ui, p, u, rest = string.match(
    value, '^([%da-z]+)|([%da-z]+)|(r?)(%d*)|([wmd])|([^|]*)|()')
  if not c then
    error('sessionguard: unreadable session record')
  end
  return {id = id, c = tonumber(c, 36), l = tonumber(l, 36), r = r == 'r', ui = tonumber(ui),
          p = PLATFORM_OF[p], u = u, blob = string.sub(value, rest), raw = value}
end

local function encode(rec)
  local flags = ''
  if rec.r then flags = 'r' end
  if rec.ui then flags = flags .. int(rec.ui) end
  return b36(rec.c) .. '|' .. b36(rec.l) .. '|' .. flags .. '|' .. LETTER_OF[rec.p] .. '|' .. rec.u
    .. '|' .. rec.blob
end

-- core.idle_limit
local function idle_limit(rec)
  if rec.r then return REMEMBER end
  if ALLOW_USER and rec.ui then return rec.ui > 0 and rec.ui or nil end  -- 0: core.NEVER_IDLE
  return idle_of(rec.p)
end

-- core.deadline
local function deadline(rec)
  local idle, absolute = idle_limit(rec), absolute_of(rec.p)
  local ends = nil
  if idle then ends = rec.l + idle * 1000 end
  if absolute then
    local a = rec.c + absolute * 1000
    if not ends or a < ends then ends = a end
  end
  return ends
end

-- core.judge: nil when valid, else the reason
local function judge(rec)
  if rec.c < EPOCH_AT and rec.id ~= EPOCH_KEEP then return 'signout_all' end
  local absolute = absolute_of(rec.p)
  if absolute and NOW >= rec.c + absolute * 1000 then return 'absolute_timeout' end
  local idle = idle_limit(rec)
  if idle and NOW >= rec.l + idle * 1000 then return 'idle_timeout' end
  return nil
end

-- core.touch_interval: how far apart last-seen is written back (ms)
local function touch_interval(rec)
  local idle = idle_limit(rec)
  if not idle then return TOUCH_MAX_MS end
  return math.min(TOUCH_MAX_MS, math.max(TOUCH_MIN_MS, math.floor(idle * 1000 / 3)))
end

-- core.retention (ms from now; nil = no expiry)
local function retention(rec)
  local ends = deadline(rec)
  if not ends then return nil end
  return math.max(ends - NOW, 0) + TOMBSTONE_MS
end

-- Members of the global listing index (keys.idx_member), newest login first in
-- lexical order: 6 bytes of inverted login time, big-endian, then the packed id: 26 bytes.
local INVERT = 281474976710655  -- 2^48 - 1

-- the position before every member of sessions created at 'created' (keys.idx_bound)
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

-- write a record with its retention (MemoryStore._put); never called on a record that is
-- not known to exist and be valid in this same script: no resurrection
local function store(rec)
  local keep = retention(rec)
  if keep then
    redis.call('SET', key('s:', rec.id), encode(rec), 'PX', int(keep))
  else
    redis.call('SET', key('s:', rec.id), encode(rec))
  end
end

-- MemoryStore._end: the record becomes a tombstone carrying the reason
local function finish(rec, reason)
  redis.call('DEL', key('s:', rec.id))
  redis.call('SET', key('e:', rec.id), reason, 'PX', TOMBSTONE_MS)
  redis.call('ZREM', BASE .. 'u:' .. rec.u, user_member(rec.id))
  if IDX then redis.call('ZREM', IDX, idx_member(rec)) end
end

-- LOCAL_CACHE: every process drops these sessions from its cache of valid checks at once
-- (state.StateCache.announced); sent by the scripts that end sessions or change them
local function announce(ids)
  if #ids > 0 then redis.call('PUBLISH', BUS, cjson.encode({drop = ids})) end
end

-- MemoryStore._user_records: the user's valid records; missing members are dropped from the
-- index and ended ones become tombstones (when prune is true), the step every count takes
local function user_records(index, prune)
  local alive = {}
  for _, member in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    local short = unpack_id(member, 22)
    local value = redis.call('GET', BASE .. 's:' .. short)
    if not value then
      if prune then redis.call('ZREM', index, member) end
    else
      local rec = parse(TAG .. short, value)
      local reason = judge(rec)
      if not reason then
        alive[#alive + 1] = rec
      elseif prune then
        finish(rec, reason)
      end
    end
  end
  return alive
end

-- the user's index lives as long as the longest-kept of its records
local function expire_index(index, recs)
  local longest = 0
  for _, rec in ipairs(recs) do
    local keep = retention(rec)
    if not keep then
      redis.call('PERSIST', index)
      return
    end
    if keep > longest then longest = keep end
  end
  if longest > 0 then redis.call('PEXPIRE', index, int(longest)) end
end

-- drop listing-index entries older than any session can live (the longest absolute timeout
-- plus the tombstone day); with an unlimited absolute timeout only listings prune it
local function prune_idx()
  if not IDX then return end
  local longest = 0
  for platform in pairs(LIMITS_AT) do
    local absolute = absolute_of(platform)
    if not absolute then return end
    if absolute > longest then longest = absolute end
  end
  local cutoff = NOW - longest * 1000 - TOMBSTONE_MS
  redis.call('ZREMRANGEBYLEX', IDX, '[' .. idx_bound(cutoff - 1), '+')
end
