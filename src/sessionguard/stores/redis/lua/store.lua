-- store.lua: what the functions do to the keys (a shared file of the library: see rules.lua), as
-- the memory store does to its own state: store() writes a record with its retention
-- (MemoryStore._put), finish_all() ends records into tombstones (MemoryStore._end), records_of()
-- reads a user's valid records (MemoryStore._user_records) and page_of() a page of the user's
-- index; keep_index() and keep_device_key() keep the keys that follow a record alive as long as
-- it, place() and prune_idx() keep the deadline and listing indexes, and announce() tells every
-- process's LOCAL_CACHE which sessions to drop.

local DEVICE_KEY_MS = 3600000  -- k:<short> outlives its record by the longest cookie lifetime

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

-- bind.lua and redeem.lua (MemoryStore.bind / .redeem): the session a device step is about,
-- judged with the caller's owed use counted (core.judge). Answers the reply to give for an
-- unknown or ended session, else nil, the record, now, and whether the owed use is to be
-- written.
local function device_step(c, key, now_arg, use_arg)
  local value = redis.call('GET', key)
  if not value then return {0, reason_of(redis.call('GET', tombstone_of(key)))} end
  local now = clock(now_arg)
  local rec = parse(key, id_of(key), value)
  local owed = tonumber(use_arg)
  local write = owed and owed > rec.l and owed <= now
  if write then rec.l = owed end
  local reason = judge_record(c, now, rec)
  if reason then
    finish(c, rec, reason, now)
    return {2, reason, value}
  end
  return nil, rec, now, write
end
