-- Dead-letter one task: DLQ entry, the chunk's failure as its result (unless another
-- delivery stored one already), ack + delete the task, atomically.
-- KEYS: tasks, results, index, stats, dlq; ARGV: group, task id, chunk id or '', frame, record.
redis.call('XADD', KEYS[5], '*', 'd', ARGV[5])
if ARGV[3] ~= '' then
  if redis.call('HSETNX', KEYS[3], ARGV[3], ARGV[2]) == 1 then
    redis.call('XADD', KEYS[2], '*', 'r', ARGV[4])
  else
    redis.call('HINCRBY', KEYS[4], 'duplicates', 1)
  end
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
