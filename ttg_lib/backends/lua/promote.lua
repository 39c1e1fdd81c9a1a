-- Move retries whose time has come back onto the tasks stream.
-- KEYS: retry, tasks.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, 100)
for _, member in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 't', member)
  redis.call('ZREM', KEYS[1], member)
end
return #due
