-- Compare-and-set of an order's state: write ARGV[2] only if the stored version equals ARGV[1].
-- An absent key has version 0.
local cur = redis.call('GET', KEYS[1])
local version = 0
if cur then
  version = cjson.decode(cur)['version'] or 0
end
if tonumber(version) ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
