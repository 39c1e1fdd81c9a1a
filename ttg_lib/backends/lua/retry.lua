-- Park a task until its retry time (server clock), then ack + delete the original; a task
-- due at once (delay 0: handed back to another worker) goes straight to the tasks stream.
-- KEYS: tasks, retry; ARGV: group, task id, delay ms, task body.
if tonumber(ARGV[3]) <= 0 then
  redis.call('XADD', KEYS[1], '*', 't', ARGV[4])
else
  local now = redis.call('TIME')
  local due = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[3])
  redis.call('ZADD', KEYS[2], due, ARGV[4])
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
