-- Compare-and-set of an order's state: write ARGV[2] only if the stored version equals ARGV[1].
-- An absent key has version 0. KEYS[2] is the set of orders under review, kept in step with
-- the state in the same atomic step: ARGV[3] is the order's member, ARGV[4] "1" if it is pending.
local cur = redis.call('GET', KEYS[1])
local version = 0
if cur then
  version = cjson.decode(cur)['version'] or 0
end
if tonumber(version) ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[4] == '1' then
  redis.call('SADD', KEYS[2], ARGV[3])
else
  redis.call('SREM', KEYS[2], ARGV[3])
end
return 1
