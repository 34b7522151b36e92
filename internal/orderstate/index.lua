-- The order index (docs/architecture.md#the-order-index): the functions the scripts that write an
-- order's state share, so that the state and its index entry are written in one atomic step. This
-- file is put in front of write.lua, acquire.lua and trim.lua; it runs nothing itself.
--
-- A shop's index is four keys: the orders by (cell, time changed), by (cell, time ordered), by id
-- (all scores 0, for prefixes), and a hash of their summaries. A score is the order's cell (its
-- credit status and shipment status, internal/orderstate/index.go) times CELL, plus a time in Unix
-- ms, so that one sorted set holds every cell, each a range of scores, and moving an order to
-- another cell is one ZADD that needs no knowledge of the cell it was in.
local CELL = 4398046511104 -- 2^42: ms up to the year 2109

-- score renders a score exactly (Lua's own number format keeps 14 digits).
local function score(n)
  return string.format('%.0f', n)
end

-- index_del removes an order from its shop's index.
local function index_del(kc, ko, kid, ksum, id)
  redis.call('ZREM', kc, id)
  redis.call('ZREM', ko, id)
  redis.call('ZREM', kid, id)
  redis.call('HDEL', ksum, id)
end

-- index_put files an order in its shop's index: kc, ko, kid and ksum are the shop's keys; changed
-- and ordered the order's scores (its cell's base plus its time changed, and ordered); summary
-- what a listing shows of it besides. An order new to the index also removes up to two orders of
-- its cell last changed before cutoff (Unix ms; '' for none): past the retention, their states
-- have expired. So the index trims itself as it grows.
local function index_put(kc, ko, kid, ksum, id, changed, ordered, summary, cutoff)
  redis.call('ZADD', kc, changed, id)
  redis.call('ZADD', ko, ordered, id)
  if redis.call('HSET', ksum, id, summary) == 1 then
    redis.call('ZADD', kid, 0, id)
    if cutoff ~= '' then
      local c = tonumber(changed)
      local base = c - c % CELL
      local gone = redis.call('ZRANGEBYSCORE', kc, score(base), '(' .. score(base + tonumber(cutoff)), 'LIMIT', 0, 2)
      for _, m in ipairs(gone) do
        index_del(kc, ko, kid, ksum, m)
      end
    end
  end
end
