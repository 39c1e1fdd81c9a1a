-- Store a worker batch's results and ack + delete its tasks, atomically.
-- KEYS: tasks, results, index, stats; ARGV: group, frame, then (task id, chunk id) pairs.
-- A chunk already in the index is a duplicate: counted, and its task acked all the same.
local fresh, ids = 0, {}
for i = 3, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[3], ARGV[i + 1], ARGV[i]) == 1 then fresh = fresh + 1 end
  ids[#ids + 1] = ARGV[i]
end
if fresh > 0 then
  redis.call('XADD', KEYS[2], '*', 'r', ARGV[2])
elseif #ids > 0 then
  redis.call('HINCRBY', KEYS[4], 'duplicates', #ids)
end
redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
redis.call('XDEL', KEYS[1], unpack(ids))
return fresh
