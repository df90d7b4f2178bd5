-- sendguard rate limits: every limit of one request, admitted all-or-nothing, one round trip.
-- KEYS[i]   one hash per (client key, scope, rate): fields i (window index), p, c (counts)
-- ARGV[1]   the time in ms, or '' to use the server's TIME
-- ARGV[2]   cost of this request
-- ARGV[3]   this client's phase, in millionths of a window (its windows start that late)
-- ARGV[2+2i], ARGV[3+2i]   amount and window (ms) of limit i
-- Returns {admitted (0/1), prev_1, curr_1, elapsed_ms_1, prev_2, ...}: counts seen before.
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local cost = tonumber(ARGV[2])
local phase = tonumber(ARGV[3]) / 1000000
local n = #KEYS
local prevs, currs, elapsed, idxs = {}, {}, {}, {}
local ok = 1
for i = 1, n do
  local amount = tonumber(ARGV[2 + 2 * i])
  local w = tonumber(ARGV[3 + 2 * i])
  local start = now - phase * w
  local idx = math.floor(start / w)
  local h = redis.call('HMGET', KEYS[i], 'i', 'p', 'c')
  local si = tonumber(h[1])
  local p = tonumber(h[2]) or 0
  local c = tonumber(h[3]) or 0
  if si == nil or (idx ~= si and idx ~= si + 1) then
    p, c = 0, 0
  elseif idx == si + 1 then
    p, c = c, 0
  end
  local el = start - idx * w
  local weight = 1 - el / w
  if weight < 0 then weight = 0 end
  if p * weight + c + cost > amount then ok = 0 end
  prevs[i], currs[i], elapsed[i], idxs[i] = p, c, el, idx
end
if ok == 1 then
  for i = 1, n do
    local w = tonumber(ARGV[3 + 2 * i])
    redis.call('HSET', KEYS[i], 'i', idxs[i], 'p', prevs[i], 'c', currs[i] + cost)
    redis.call('PEXPIRE', KEYS[i], 2 * w + 1000)
  end
end
local out = {ok}
for i = 1, n do
  out[#out + 1] = prevs[i]
  out[#out + 1] = currs[i]
  out[#out + 1] = elapsed[i]
end
return out
