-- sendguard idempotency ledger: one hash per entry, every transition atomic, one round trip.
-- The transitions mirror sendguard/jobs/_ledger_core.py (one behaviour suite runs both).
-- KEYS[1]  the entry's hash
-- KEYS[2]  the ledger's leases (sorted set: key -> lease end, ms)
-- KEYS[3]  the ledger's unknown entries (sorted set: key -> when it became unknown, ms)
-- ARGV[1]  operation: begin | finish | renew | get | resolve | expire
-- ARGV[2]  the time in ms, or '' to use the server's TIME (processes never compare clocks)
-- ARGV[3]  the ledger key (the user's)
-- ARGV[4..] operation arguments (see each branch)
-- Returns {code, state, fingerprint, token, lease_left_ms, attempts, result, has_result,
--          digest, detail, updated_ms, created_ms}
-- States: -1 none, 0 in progress, 1 completed, 2 failed, 3 unknown.
-- Codes: begin: 0 started, 1 replayed, 2 in progress, 3 unknown, 4 mismatch;
--        the others: 1 applied, 0 not applied.
local key, leases, unknowns = KEYS[1], KEYS[2], KEYS[3]
local op, lkey = ARGV[1], ARGV[3]
local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local h = redis.call('HMGET', key, 'st', 'fp', 'tok', 'lease', 'n', 'res', 'hr', 'dig', 'why',
                     'upd', 'crt', 'exp')
local st = tonumber(h[1]) or -1
local exp = tonumber(h[12]) or 0
if exp > 0 and exp <= now then st = -1 end  -- past its retention (PEXPIRE removes it too)
local fp, tok = h[2] or '', h[3] or ''
local lease, n = tonumber(h[4]) or 0, tonumber(h[5]) or 0
local res, hr, dig, why = h[6] or '', h[7] or '0', h[8] or '', h[9] or ''
local upd, crt = tonumber(h[10]) or 0, tonumber(h[11]) or 0
local ABANDONED = 'lease expired: the attempt stopped without reporting its outcome'

local function reply(code)
  local left = 0
  if st == 0 and lease > now then left = lease - now end
  return {code, st, fp, tok, left, n, res, hr, dig, why, upd, crt}
end

local function save()
  redis.call('HSET', key, 'k', lkey, 'st', st, 'fp', fp, 'tok', tok, 'lease', lease, 'n', n,
             'res', res, 'hr', hr, 'dig', dig, 'why', why, 'upd', upd, 'crt', crt, 'exp', exp)
end

local function hold(token, lease_ms)  -- an attempt takes the entry; kept until it reports
  st = 0; tok = token; lease = now + lease_ms; why = ''; upd = now; exp = 0
  save()
  redis.call('PERSIST', key)
  redis.call('ZADD', leases, lease, lkey)
  redis.call('ZREM', unknowns, lkey)
end

local function to_unknown(detail)  -- kept until an operator resolves it
  st = 3; why = detail; upd = now; lease = 0; exp = 0
  save()
  redis.call('PERSIST', key)
  redis.call('ZREM', leases, lkey)
  redis.call('ZADD', unknowns, now, lkey)
end

local function settle(state, retention_ms)  -- completed or failed: kept for the retention
  st = state; upd = now; lease = 0; exp = now + retention_ms
  save()
  redis.call('ZREM', leases, lkey)
  redis.call('ZREM', unknowns, lkey)
  redis.call('PEXPIRE', key, retention_ms)
end

if op == 'get' then
  return reply(1)
elseif op == 'begin' then
  -- ARGV[4] fingerprint, ARGV[5] token, ARGV[6] lease ms, ARGV[7] retry abandoned (1/0)
  if st == -1 then
    fp = ARGV[4]; n = 1; res = ''; hr = '0'; dig = ''; crt = now
    hold(ARGV[5], tonumber(ARGV[6]))
    return reply(0)
  end
  if fp ~= ARGV[4] then return reply(4) end
  if st == 1 then return reply(1) end
  if st == 3 then return reply(3) end
  if st == 0 then
    if lease > now then return reply(2) end
    if ARGV[7] ~= '1' then
      to_unknown(ABANDONED)
      return reply(3)
    end
  end
  n = n + 1
  hold(ARGV[5], tonumber(ARGV[6]))
  return reply(0)
elseif op == 'finish' then
  -- ARGV[4] token, ARGV[5] state, ARGV[6] result, ARGV[7] has result, ARGV[8] digest,
  -- ARGV[9] detail, ARGV[10] retention ms
  if st == -1 or tok ~= ARGV[4] or (st ~= 0 and st ~= 3) then return reply(0) end
  res = ARGV[6]; hr = ARGV[7]; dig = ARGV[8]
  local state = tonumber(ARGV[5])
  if state == 3 then
    to_unknown(ARGV[9])
  else
    why = ARGV[9]
    settle(state, tonumber(ARGV[10]))
  end
  return reply(1)
elseif op == 'renew' then
  -- ARGV[4] token, ARGV[5] lease ms
  if st ~= 0 or tok ~= ARGV[4] then return reply(0) end
  lease = now + tonumber(ARGV[5])
  redis.call('HSET', key, 'lease', lease)
  redis.call('ZADD', leases, lease, lkey)
  return reply(1)
elseif op == 'expire' then
  if st ~= 0 or lease > now then return reply(0) end
  to_unknown(ABANDONED)
  return reply(1)
elseif op == 'resolve' then
  -- ARGV[4] state (1 completed, 2 failed), ARGV[5] detail, ARGV[6] retention ms
  if not (st == 3 or (st == 0 and lease <= now)) then return reply(0) end
  why = ARGV[5]
  if ARGV[4] == '1' then res = 'null'; hr = '1'; dig = '' end  -- happened, result unknown
  settle(tonumber(ARGV[4]), tonumber(ARGV[6]))
  return reply(1)
end
return redis.error_reply('unknown ledger operation ' .. op)
