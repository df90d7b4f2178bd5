-- sendguard shared bulkhead: slots are leases in a sorted set, scored by their expiry.
-- KEYS[1]  the bulkhead's sorted set
-- ARGV[1]  op: enter | leave | renew
-- ARGV[2]  the time in ms, or '' for the server's TIME
-- enter:   ARGV[3] the holder's token, ARGV[4] capacity, ARGV[5] lease ms
-- leave:   ARGV[3] the holder's token
-- renew:   ARGV[3] lease ms, ARGV[4..] the tokens a process still holds
-- Returns 1 when the slot was taken (enter) or given back (leave), else 0; for renew,
-- how many of the tokens still held a lease (and now hold a fresh one).
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
if ARGV[1] == 'renew' then
  local lease = tonumber(ARGV[3])
  local renewed = 0
  for i = 4, #ARGV do
    if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
      redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[i])
      renewed = renewed + 1
    end
  end
  if renewed > 0 then
    redis.call('PEXPIRE', KEYS[1], lease + 1000)
  end
  return renewed
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]) + 1000)
return 1
