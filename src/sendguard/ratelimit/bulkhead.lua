-- sendguard shared bulkhead: slots are leases in a sorted set, scored by their expiry.
-- KEYS[1]  the bulkhead's sorted set
-- ARGV[1]  op: enter | leave
-- ARGV[2]  the time in ms, or '' for the server's TIME
-- ARGV[3]  the holder's token
-- ARGV[4]  capacity (enter)      ARGV[5]  lease ms (enter)
-- Returns 1 when the slot was taken (enter) or given back (leave), else 0.
local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
if ARGV[1] == 'leave' then
  return redis.call('ZREM', KEYS[1], ARGV[3])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]) + 1000)
return 1
