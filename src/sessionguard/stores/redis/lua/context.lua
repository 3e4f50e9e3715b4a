-- context.lua: the context argument and the clock (a shared file of the library: see rules.lua).
--
-- The context (ARG.<function>.context) is one argument that is the same for every call while
-- the policy and the epoch are: the fields of CONTEXT, '|'-separated (operations.Operations
-- packs it). It is parsed once per distinct value and kept in `contexts` below: a pure cache
-- (the same text always gives the same table), so a call pays one table lookup for it. Its
-- policy tables answer as policy.Policy.platform does (web_otherwise), and it keeps the touch
-- interval of each idle limit (interval_of, rules.lua).

-- A policy table of the context (per platform) that answers for a platform the context does
-- not name (its sessions' kind was taken out of PLATFORMS) with web's: policy.Policy.platform.
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
