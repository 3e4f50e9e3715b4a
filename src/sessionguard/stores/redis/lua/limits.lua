-- limits.lua: the session limits (a shared file of the library: see rules.lua), mirroring
-- sessionguard/core/limits.py: evict_first() = core.eviction_order, surplus() = core.surplus,
-- reconcile() = core.reconcile_due then core.surplus, LIMITS_GRACE_MS = core's (in the generated
-- contract). The admission of a login (core.admission) is create.lua's own.

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
    -- a kind taken out of PLATFORMS follows web's limit (policy.Policy.platform)
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
