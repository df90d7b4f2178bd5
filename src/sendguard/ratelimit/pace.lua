-- sendguard pacing (GCRA): one theoretical arrival time per key, all rates or none.
-- KEYS[i]   the TAT of rate i (ms)
-- ARGV[1]   the time in ms, or '' for the server's TIME
-- ARGV[2]   cost      ARGV[3]  burst
-- ARGV[3+i] emission interval of rate i, in microseconds
-- Returns the wait in microseconds (0: counted, the send may go now).
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1]) * 1000
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local cost = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local wait = 0
local tats = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[3 + i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  tats[i] = tat + cost * interval
  local w = tats[i] - now - math.max(burst, cost) * interval
  if w > wait then wait = w end
end
if wait <= 0 then
  for i = 1, #KEYS do
    redis.call('SET', KEYS[i], tats[i], 'PX', math.ceil((tats[i] - now) / 1000) + 1000)
  end
  return 0
end
return math.ceil(wait)
