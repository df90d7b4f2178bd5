-- sendguard breaker state: one hash per breaker, every operation atomic, one round trip.
-- KEYS[1]  the breaker's state hash
-- ARGV[1]  operation: read | trip | probe | release | report | override | reset
-- ARGV[2]  the time in ms, or '' to use the server's TIME (so processes never compare clocks)
-- ARGV[3..] operation arguments (see each branch)
-- Returns {state, generation, open_remaining_ms, reopenings, override, override_reason,
--          override_remaining_ms (-1: none), reason, granted, probes_left}
-- States: 0 closed, 1 open, 2 half-open. Overrides: 0 none, 1 forced open, 2 forced closed.
local key = KEYS[1]
local op = ARGV[1]
local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local h = redis.call('HMGET', key, 'st', 'gen', 'until', 'reop', 'left', 'ok', 'since',
                     'ov', 'ovr', 'ovu', 'why')
local st = tonumber(h[1]) or 0
local gen = tonumber(h[2]) or 0
local till = tonumber(h[3]) or 0
local reop = tonumber(h[4]) or 0
local left = tonumber(h[5]) or 0
local okc = tonumber(h[6]) or 0
local since = tonumber(h[7]) or 0
local ov = tonumber(h[8]) or 0
local ovr = h[9] or ''
local ovu = tonumber(h[10]) or 0
local why = h[11] or ''
local granted = 0
local changed = false

local function open(ms, reopenings, reason)
  st = 1; gen = gen + 1; till = now + ms; reop = reopenings; why = reason; changed = true
end

if ov ~= 0 and ovu > 0 and now >= ovu then
  ov = 0; ovr = ''; ovu = 0; changed = true
end

if op == 'trip' then
  -- ARGV: 3 generation seen, 4 open ms, 5 reopenings, 6 reason
  if gen == tonumber(ARGV[3]) and st ~= 1 then
    open(tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6])
  end
elseif op == 'probe' then
  -- ARGV: 3 probes, 4 max wait ms, 5 reopen ms
  if st == 1 and now >= till then
    st = 2; gen = gen + 1; left = tonumber(ARGV[3]); okc = 0; since = now
    why = 'open_elapsed'; changed = true
  end
  if st == 2 then
    if left > 0 then
      left = left - 1; since = now; granted = 1; changed = true
    elseif now - since > tonumber(ARGV[4]) then
      -- every permit is out and none came back in time: a probe hung or its process died
      open(tonumber(ARGV[5]), reop + 1, 'half_open_timeout')
    end
  end
elseif op == 'release' then
  -- ARGV: 3 generation
  if st == 2 and gen == tonumber(ARGV[3]) then
    left = left + 1; changed = true
  end
elseif op == 'report' then
  -- ARGV: 3 generation, 4 ok (1/0), 5 successes needed, 6 reopen ms
  if st == 2 and gen == tonumber(ARGV[3]) then
    if ARGV[4] == '1' then
      okc = okc + 1; changed = true
      if okc >= tonumber(ARGV[5]) then
        st = 0; gen = gen + 1; reop = 0; why = 'probes_succeeded'
      end
    else
      open(tonumber(ARGV[6]), reop + 1, 'probe_failed')
    end
  end
elseif op == 'override' then
  -- ARGV: 3 override (0/1/2), 4 reason, 5 ttl ms (0: until cleared)
  ov = tonumber(ARGV[3]); ovr = ARGV[4]; changed = true
  if ov == 0 then ovr = '' end
  if ov ~= 0 and tonumber(ARGV[5]) > 0 then ovu = now + tonumber(ARGV[5]) else ovu = 0 end
elseif op == 'reset' then
  st = 0; gen = gen + 1; till = 0; reop = 0; left = 0; okc = 0; since = 0
  ov = 0; ovr = ''; ovu = 0; why = 'reset'; changed = true
end

if changed then
  redis.call('HSET', key, 'st', st, 'gen', gen, 'until', till, 'reop', reop, 'left', left,
             'ok', okc, 'since', since, 'ov', ov, 'ovr', ovr, 'ovu', ovu, 'why', why)
  if ov ~= 0 and ovu == 0 then
    redis.call('PERSIST', key)
  else
    local keep = 7 * 86400000
    if ovu - now > keep then keep = ovu - now end
    redis.call('PEXPIRE', key, keep)
  end
end

local open_left = 0
if st == 1 and till > now then open_left = till - now end
local ov_left = -1
if ov ~= 0 and ovu > 0 then ov_left = ovu - now end
return {st, gen, open_left, reop, ov, ovr, ov_left, why, granted, left}
