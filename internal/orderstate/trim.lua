-- Removes from a shop's index the orders past the retention, at most a number of them (index.lua
-- comes in front of this file).
--
-- KEYS[1] to KEYS[4] the shop's index: by time changed, by time ordered, by id, the summaries.
-- ARGV[1] the retention cutoff (Unix ms): an order last changed before it leaves; ARGV[2] how many
-- cells there are; ARGV[3] the most orders to remove.
--
-- Returns how many orders it removed.
local cutoff, max = tonumber(ARGV[1]), tonumber(ARGV[3])
local removed = 0
for c = 0, tonumber(ARGV[2]) - 1 do
  if removed >= max then
    break
  end
  local base = c * CELL
  local gone = redis.call('ZRANGEBYSCORE', KEYS[1], score(base), '(' .. score(base + cutoff), 'LIMIT', 0, max - removed)
  for _, id in ipairs(gone) do
    index_del(KEYS[1], KEYS[2], KEYS[3], KEYS[4], id)
  end
  removed = removed + #gone
end
return removed
