-- records.lua: keys, ids, members and the session record's format (a shared file of the
-- library: see rules.lua), as sessionguard/stores/redis/records.py and keys.py write them.
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
-- time in ms; bind.lua), deleted with the record by finish_all() (store.lua), r:<user> when
-- the user's sessions were last reconciled with lowered limits (ms; reconcile(), limits.lua).
-- Every key derived here shares the slot of the declared keys: the tag is in the base.
-- Messages on the bus '<prefix>:bus': {"drop": [id, ...]} (announce(), store.lua) and the
-- state (state.lua).

-- t:<user> (the user's own idle timeouts) is kept 400 days from a login or a change
local SETTINGS_MS = 400 * 86400000

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

-- the reason a tombstone carries ('' for none): '<reason>|<ended at>|<record>'
local function reason_of(tombstone)
  if not tombstone then return '' end
  return match(tombstone, '^[^|]*')
end
