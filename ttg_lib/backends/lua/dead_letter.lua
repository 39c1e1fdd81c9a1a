-- Dead-letter one task (or bundle): DLQ entry, its chunks' results (failures, or a bundle's
-- chunks computed before it failed) unless other deliveries stored them already, ack +
-- delete the task, atomically.
-- KEYS: tasks, results, index, stats, dlq; ARGV: group, task id, record, frame or '', then
-- the frame's chunk ids.
redis.call('XADD', KEYS[5], '*', 'd', ARGV[3])
local fresh = 0
for i = 5, #ARGV do
  if redis.call('HSETNX', KEYS[3], ARGV[i], ARGV[2]) == 1 then fresh = fresh + 1 end
end
if fresh > 0 then
  redis.call('XADD', KEYS[2], '*', 'r', ARGV[4])
end
if #ARGV - 4 > fresh then
  redis.call('HINCRBY', KEYS[4], 'duplicates', #ARGV - 4 - fresh)
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
