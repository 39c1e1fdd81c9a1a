-- Extend the run lock only while this run holds it. KEYS: lock; ARGV: run id, ttl ms.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
