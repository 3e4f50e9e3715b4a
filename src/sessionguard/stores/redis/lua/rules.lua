-- rules.lua: the rules every function of the library shares, mirroring sessionguard/core/ (a
-- package, one module per rule; every name below is re-exported as core.<name>) rule for rule:
--   core.timeouts   idle_limit() = core.idle_limit, lifetime_ms() = core.lifetime, judge() =
--                   core.judge (with core.timed_out), deadline_of() = core.sweep_deadline;
--   core.touches    interval_of() = core.touches._interval, touch_interval() = core.touch_interval,
--                   TOUCH_MIN_MS, TOUCH_MAX_MS = core's;
--   core.tombstones retention() = core.retention, ended_at() = core.ended_at, TOMBSTONE_MS = core's;
--   core.binding    redeemable() = core.redeemable, CHALLENGE_MS = core's.
-- core.limits is mirrored in limits.lua.
--
-- The library's shared files run once, when the library is loaded: scripts.library puts the
-- generated contract first, then these files in the order of scripts.SHARED, then the functions;
-- each may use what those before it define (a Lua local is seen only below it):
--   rules.lua    the bound globals (bind()) and the rules above;
--   context.lua  the context argument (the policy and the epoch), parsed once, and the clock;
--   records.lua  keys, ids, members and the record's format (records.py, keys.py);
--   store.lua    writing, ending and reading records, and the indexes (MemoryStore's steps);
--   limits.lua   the order of eviction and the lowered limits (core.limits).

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

local TOMBSTONE_MS = 86400000
local TOUCH_MIN_MS = 1000
local TOUCH_MAX_MS = 600000
local CHALLENGE_MS = 300000  -- core.CHALLENGE_MS

-- timeouts (core.timeouts) -------------------------------------------------------------------

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


-- core.sweep_deadline: the deadline (ms) the policy's timeouts give the record, applied or not
-- (nil = never)
local function deadline_of(c, rec)
  local idle, absolute = idle_limit(c, rec.r, rec.ui, rec.p), lifetime_ms(c, rec.r, rec.p)
  local ends = nil
  if idle then ends = rec.l + idle * 1000 end
  if absolute and (not ends or rec.c + absolute < ends) then ends = rec.c + absolute end
  return ends
end

-- touches (core.touches) --------------------------------------------------------------------

-- core.touches._interval: how far apart (ms) last-seen is written back for an idle limit of
-- `idle` s
local function interval_of(idle)
  if not idle then return TOUCH_MAX_MS end
  return math.min(TOUCH_MAX_MS, math.max(TOUCH_MIN_MS, math.floor(idle * 1000 / 3)))
end

-- core.touch_interval (ms), the context's where the policy decides it
local function touch_interval(c, remember, ui, platform)
  if remember then return c.remember_interval end
  if c.allow_user and ui then return interval_of(ui > 0 and ui or nil) end
  return c.interval[platform]
end

-- retention and tombstones (core.tombstones) ------------------------------------------------

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

-- device binding (core.binding, DBSC) ---------------------------------------------------------

-- core.redeemable for one challenge issued at `issued` (ms), given whether the session's
-- k:<short> hash holds it already (answered before)
local function redeemable(now, issued, used)
  return issued <= now + CHALLENGE_MS and now - issued <= CHALLENGE_MS and not used
end
