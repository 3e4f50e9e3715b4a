-- create: a login (MemoryStore.create). Mirrors core.admission: first the platform's limit
-- (refuse, or evict on that platform in core.eviction_order), then SESSION_CEILING (evict
-- among all the user's sessions), counted over the user's valid sessions, pruned in this same
-- step (missing ones leave the index, ended ones become tombstones), so stale entries never
-- lock a user out and however many logins race the user never holds more than the limit.
-- The id comes from the caller, so a retried create finds its own record and changes nothing:
-- a retry cannot take two slots. Evicted ids are announced on the bus (LOCAL_CACHE).
--
-- Bounded work: the index counts (ZLEXCOUNT per platform letter, ZCARD) are upper bounds of
-- the valid sessions, so a login under both limits reads no record at all. At a limit it reads
-- the records that count, up to READ_LIMIT of them; beyond that it answers {4} and the store
-- reads the user's sessions in pages (user_page, which prunes them), plans the admission with
-- core.admission and calls again naming the sessions to evict, in order, as `victims`: then
-- the counts are exact but for sessions ended since, and each victim is checked here again.
--
-- KEYS   user index '<base>u:<user>', user settings '<base>t:<user>', the new record
--        '<base>s:<short>' (its tombstone '<base>e:<short>' shares its slot)
-- ARGV   context, now (ms; '' = the server's TIME), tag, id, platform, remember '1'/'0',
--        user (keys.encode_user), tail: the record's tail, victims: ','-separated ids ('' = none)
-- returns {0, limit}                        refused (ON_LIMIT=reject): nothing changed
--         {1, record, now, id1, record1, ...} created, with the evicted ids and records (now as
--                                           rules.lua clock gives it)
--         {2, record}                       already created by an earlier attempt
--         {3, reason}                       created by an earlier attempt and ended since
--         {4}                               too many records to read: page them, name victims
local K, A = KEY.create, ARG.create
local c = context(ARGV[A.context])
local existing = redis.call('GET', KEYS[K.record])
if existing then return {2, existing} end
local gone = redis.call('GET', tombstone_of(KEYS[K.record]))
if gone then return {3, gone} end

local now, now_text, now_tail = clock(ARGV[A.now])
local index, tag = KEYS[K.index], ARGV[A.tag]
local platform, letter = ARGV[A.platform], LETTER_OF[ARGV[A.platform]]
local base = c.prefix .. ':{' .. tag .. '}:'
local victims = {}
for id in string.gmatch(ARGV[A.victims], '[^,]+') do victims[#victims + 1] = id end
local limit = c.max[platform]

local reply, ids = {1, '', now_text .. now_tail}, {}
-- the sessions counted against a limit: the platform's ('' = all of the user's)
local function counted(only)
  if only == '' then return redis.call('ZCARD', index) end
  return redis.call('ZLEXCOUNT', index, '[' .. only, '(' .. string.char(string.byte(only) + 1))
end

-- too many records to read, and no victims named: nothing changes before the store has paged
if #victims == 0 then
  local same, total = limit and counted(letter), counted('')
  if (same and same >= limit and same > READ_LIMIT) or (total >= c.ceiling and total > READ_LIMIT) then
    return {4}
  end
end
local function evict(rec)
  finish(c, rec, 'evicted')
  ids[#ids + 1] = rec.id
  reply[#reply + 1] = rec.id
  reply[#reply + 1] = rec.value
end

-- Leave fewer than `most` of the sessions counted by `only`, or refuse ('refused': nothing
-- evicted; only a platform's limit may refuse). Few sessions are all read (exact); many are
-- left to the victims, in their order, each checked valid here (a gone or ended one is pruned
-- instead). 'rescan': the victims ran out first.
local function admit(most, only, refuse)
  local count = counted(only)
  if count < most then return 'admitted' end
  if count <= READ_LIMIT then
    local alive = records_of(c, now, base, index, page_of(index, '', count + 1, only), true)
    if #alive < most then return 'admitted' end
    if refuse then return 'refused' end
    evict_first(c, alive)
    for i = 1, #alive - most + 1 do evict(alive[i]) end
    return 'admitted'
  end
  for _, id in ipairs(victims) do
    local key = base .. 's:' .. string.sub(id, TAG_LENGTH + 1)
    local value = redis.call('GET', key)
    local rec = value and parse(key, id, value)
    if rec and (only == '' or rec.p == platform) then
      local reason = judge_record(c, now, rec)
      if reason then
        finish(c, rec, reason)
      elseif refuse then
        return 'refused'
      else
        evict(rec)
      end
      count = counted(only)
      if count < most then return 'admitted' end
    end
  end
  if refuse then return 'refused' end
  return 'rescan'
end

local refuse = c.on_limit == 'reject'
local admitted = limit and admit(limit, letter, refuse) or 'admitted'
if admitted == 'admitted' then admitted = admit(c.ceiling, '', false) end
if admitted == 'refused' then return {0, limit} end
if admitted == 'rescan' then return {4} end

local own = redis.call('HGET', KEYS[K.settings], platform)
local rec = {key = KEYS[K.record], id = ARGV[A.id], c = now, l = now, r = ARGV[A.remember] == '1',
             ui = tonumber(own or ''), p = platform, u = ARGV[A.user]}
local fresh = redis.call('EXISTS', index) == 0
local keep = store(c, now, rec, ARGV[A.tail])
redis.call('ZADD', index, 0, member_of(rec))
if fresh and keep then redis.call('PEXPIRE', index, keep) else keep_index(index, keep) end
if redis.call('EXISTS', KEYS[K.settings]) == 1 then redis.call('PEXPIRE', KEYS[K.settings], SETTINGS_MS) end
if c.idx then
  redis.call('ZADD', c.idx, 0, idx_member(rec))
  prune_idx(c, now)
end
announce(c, ids)
reply[2] = encode(rec, ARGV[A.tail])
return reply
