-- A worker seen to die: move its pending entries to the consumer ARGV[3] with an idle time
-- past any lease, so the next live worker's sweep takes them, and delete the dead consumer.
-- One script, so an entry a live worker has claimed meanwhile is never taken back.
-- KEYS: tasks; ARGV: group, dead consumer, holding consumer, idle ms.
local ids = {}
for _, entry in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 100000, ARGV[2])) do
  ids[#ids + 1] = entry[1]
end
if #ids > 0 then
  local claim = {'XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0}
  for _, id in ipairs(ids) do claim[#claim + 1] = id end
  claim[#claim + 1] = 'IDLE'
  claim[#claim + 1] = ARGV[4]
  claim[#claim + 1] = 'JUSTID'
  redis.call(unpack(claim))
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return #ids
