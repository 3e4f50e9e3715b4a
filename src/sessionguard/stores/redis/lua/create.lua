-- create: a login (MemoryStore.create). Mirrors core.admission: first the platform's limit
-- (refuse, or evict on that platform in core.eviction_order), then MAX_SESSIONS_TOTAL (refuse,
-- or evict among all the sessions the first leaves), then SESSION_CEILING (evict among all the
-- user's sessions), counted over the user's valid sessions, pruned in this same step (missing ones leave the index, ended ones become tombstones), so stale entries never
-- lock a user out and however many logins race the user never holds more than the limit.
-- The id comes from the caller, so a retried create finds its own record and changes nothing:
-- a retry cannot take two slots. Evicted ids are announced on the bus (LOCAL_CACHE).
--
-- Bounded work (core.admission_needs_count): the sessions held are counted from the user's index
-- (ZLEXCOUNT of the platform's code, ZCARD), ended ones not noticed yet included, so a login
-- under both limits reads no other record. At a limit it reads the user's records, up to
-- READ_LIMIT of them; beyond that it answers {4}, changing nothing, and the store reads them in
-- pages (user_page, which prunes them), plans with core.admission and calls again naming the
-- sessions to evict as `victims`: each is checked valid here again, and if the limits still do
-- not hold (logins raced), the store reads again.
--
-- KEYS   user index '<base>u:<user>', user settings '<base>t:<user>', the new record
--        '<base>s:<short>' (its tombstone '<base>e:<short>' shares its slot)
-- ARGV   context, now (ms; '' = the server's TIME), tag, id, platform, remember '1'/'0',
--        user (keys.encode_user), tail: the record's tail, victims: ','-separated ids ('' = not
--        planned yet; '-' = planned, none: under ENFORCE=report a limit may stay exceeded),
--        replacing: the id of the session the request presented when it has the same tag ('' =
--        none; core.counted): if it is this user's and valid, it is not counted against the
--        limits and ends ('signed_out') only if the login is admitted
-- Under ENFORCE=report the platform's and the total limits are judged as above but not
-- applied: what they would have done (core.admission's reported evictions, or the refusal)
-- comes back in `report`, and only SESSION_CEILING evicts.
--
-- returns {0, limit}                        refused (ON_LIMIT=reject): nothing changed;
--         {0, limit, 'total'}               refused by MAX_SESSIONS_TOTAL
--         {1, record, now, report, replaced, id1, record1, ...}  created, with the ended
--                                           `replacing` record ('' = none) and the evicted ids
--                                           and records
--                                           (now as context.lua clock gives it); report: {would,
--                                           id, record, ...}, would 'rejected' (the limit would
--                                           have refused this login), 'evicted' (it would have
--                                           evicted these sessions) or '' (ENFORCE=on, or nothing)
--         {2, record}                       already created by an earlier attempt
--         {3, reason}                       created by an earlier attempt and ended since
--         {4}                               too many records to read: page them, name victims
local K, A = KEY.create, ARG.create
local c = context(ARGV[A.context])
local existing = redis.call('GET', KEYS[K.record])
if existing then return {2, existing} end
local gone = redis.call('GET', tombstone_of(KEYS[K.record]))
if gone then return {3, reason_of(gone)} end

local now, now_text, now_tail = clock(ARGV[A.now])
local index, tag = KEYS[K.index], ARGV[A.tag]
local platform, code = ARGV[A.platform], code_of(ARGV[A.platform])
local base = c.prefix .. ':{' .. tag .. '}:'
local victims, planned_by_store = {}, ARGV[A.victims] ~= ''
if ARGV[A.victims] ~= '-' then
  for id in string.gmatch(ARGV[A.victims], '[^,]+') do victims[#victims + 1] = id end
end
local limit = c.max[platform]

-- core.counted: the presented session, when it is this user's and valid, takes no place
local spare
if ARGV[A.replacing] ~= '' then
  local key = base .. 's:' .. string.sub(ARGV[A.replacing], TAG_LENGTH + 1)
  local value = redis.call('GET', key)
  if value then
    spare = parse(key, ARGV[A.replacing], value)
    if user_of(spare) ~= ARGV[A.user] or judge_record(c, now, spare) then spare = nil end
  end
end

local report = {''}
local reply, ids = {1, '', now_text .. now_tail, report, ''}, {}
local function evict(rec)
  finish(c, rec, 'evicted', now)
  ids[#ids + 1] = rec.id
  reply[#reply + 1] = rec.id
  reply[#reply + 1] = rec.value
end

-- the sessions held against a limit: the platform's ('' = all of the user's)
local function held(only)
  local n = (spare and (only == '' or code_of(spare.p) == only)) and -1 or 0
  if only == '' then return n + redis.call('ZCARD', index) end
  return n + redis.call('ZLEXCOUNT', index, code_range(only))
end

-- core.admission_needs_count: below every limit, nothing else is read (under ENFORCE=report
-- the platform's and the total limits are read for the report); `applied`: only the limits
-- that apply
local function over_a_limit(applied)
  local limits_count = c.enforce or not applied
  local total = limits_count and c.total
  return (limit and limits_count and held(code) >= limit) or (total and held('') >= total)
    or held('') >= c.ceiling
end

if over_a_limit(false) then
  local total = redis.call('ZCARD', index)  -- every member (the spare's too: held('') leaves it out)
  if total <= READ_LIMIT then
    -- core.admission over the user's valid sessions, pruned in this same step
    local alive = records_of(c, now, base, index, page_of(index, '', total + 1, ''), true)
    if spare then
      for i, rec in ipairs(alive) do
        if rec.id == spare.id then table.remove(alive, i) break end
      end
    end
    local plan, planned, would, left = {}, {}, {}, {}
    -- the platform's limit, then the total over what it leaves (as if applied)
    for _, scope in ipairs({{platform, limit}, {false, c.total}}) do
      local counted, cap = {}, scope[2]
      for _, rec in ipairs(alive) do
        if not left[rec.id] and (not scope[1] or rec.p == scope[1]) then counted[#counted + 1] = rec end
      end
      if cap and #counted >= cap then
        if c.on_limit == 'reject' then
          if c.enforce then return scope[1] and {0, cap} or {0, cap, 'total'} end
          report[1] = 'rejected'  -- ENFORCE=report: what the limit would have done, reported, not done
        else
          evict_first(c, counted)
          for i = 1, #counted - cap + 1 do
            local rec = counted[i]
            left[rec.id] = true
            if c.enforce then plan[#plan + 1], planned[rec.id] = rec, true else would[#would + 1] = rec end
          end
        end
      end
    end
    local rest = {}
    for _, rec in ipairs(alive) do
      if not planned[rec.id] then rest[#rest + 1] = rec end
    end
    if #rest + 1 > c.ceiling then
      evict_first(c, rest)
      for i = 1, #rest + 1 - c.ceiling do plan[#plan + 1] = rest[i] end
    end
    for _, rec in ipairs(plan) do evict(rec) end
    -- what the limit would have evicted (ENFORCE=report), of the sessions the ceiling leaves
    local gone_now = {}
    for _, rec in ipairs(plan) do gone_now[rec.id] = true end
    for _, rec in ipairs(would) do
      if not gone_now[rec.id] then
        report[1], report[#report + 1], report[#report + 2] = 'evicted', rec.id, rec.value
      end
    end
  elseif not planned_by_store then
    return {4}  -- too many to read here: nothing has changed; the store pages, then names victims
  else
    -- the plan the store made of the pages it read: each victim checked valid here (a gone or
    -- ended one is pruned instead), then the limits must hold, or the store reads again
    for _, id in ipairs(victims) do
      local key = base .. 's:' .. string.sub(id, TAG_LENGTH + 1)
      local value = redis.call('GET', key)
      if value then
        local rec = parse(key, id, value)
        local reason = judge_record(c, now, rec)
        if reason then finish(c, rec, reason, now) else evict(rec) end
      end
    end
    if over_a_limit(true) then
      if c.enforce and c.on_limit == 'reject' then
        if limit and held(code) >= limit then return {0, limit} end
        if c.total and held('') >= c.total then return {0, c.total, 'total'} end
      end
      return {4}
    end
  end
end

if spare then  -- admitted: the presented session ends (the session-fixation defence)
  finish(c, spare, 'signed_out', now)
  ids[#ids + 1], reply[5] = spare.id, spare.value
end
local own = redis.call('HGET', KEYS[K.settings], platform)
local rec = {key = KEYS[K.record], id = ARGV[A.id], c = now, l = now, r = ARGV[A.remember] == '1',
             ui = tonumber(own or ''), p = platform, u = ARGV[A.user]}
local fresh = redis.call('EXISTS', index) == 0
local keep = store(c, now, rec, ARGV[A.tail])
redis.call('ZADD', index, 0, member_of(rec))
if fresh and keep then redis.call('PEXPIRE', index, keep + TOMBSTONE_MS) else keep_index(index, keep) end
if redis.call('EXISTS', KEYS[K.settings]) == 1 then redis.call('PEXPIRE', KEYS[K.settings], SETTINGS_MS) end
if c.idx then
  redis.call('ZADD', c.idx, 0, idx_member(rec))
  place(c, rec)
  prune_idx(c, now)
end
announce(c, ids)
reply[2] = encode(rec, ARGV[A.tail])
return reply
