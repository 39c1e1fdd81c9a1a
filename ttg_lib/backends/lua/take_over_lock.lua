-- Replace a lock still held under a dead owner's record by ours, atomically.
-- KEYS: lock; ARGV: stale owner record, new owner record, ttl ms.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
