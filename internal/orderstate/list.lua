-- Lists a page of one shop's order index, newest first (docs/architecture.md#the-order-index).
--
-- KEYS[1] the index sorted by the listing's time (by time changed or ordered), KEYS[2] the index
-- by the other time, KEYS[3] the ids (for prefixes), KEYS[4] the summaries.
-- ARGV[1] the cells to list, space-separated; ARGV[2] and ARGV[3] the range of the listing's time
-- (Unix ms, inclusive); ARGV[4] and ARGV[5] the cursor: the time and id of the last order of the
-- page before, or ''; ARGV[6] and ARGV[7] the range of the other time (inclusive), or '' for
-- none; ARGV[8] an id prefix, or ''; ARGV[9] the page's size; ARGV[10] the most entries to look at
-- when walking (the budget); ARGV[11] the most candidates to gather and sort.
--
-- Returns {next time, next id, entries looked at, then for each order: id, score by the listing's
-- time, score by the other time, summary}. The next position is '' when nothing follows.
--
-- Two ways to a page:
-- - gather: when the id prefix, or the range of the other time, selects at most ARGV[11] orders
--   (ZLEXCOUNT, or a ZCOUNT per cell of KEYS[2]), they are all read, their scores in KEYS[1]
--   looked up (ZMSCORE), filtered, sorted, and the page taken from the head. Exact, O(candidates).
-- - walk: each cell is a range of scores in KEYS[1] (cell × CELL + time); the cells asked for are
--   read from the newest down, each from its rank past the cursor (ZCOUNT, and past_cursor for the
--   cursor's ties, give it; ZREVRANGE reads chunks: O(log N) a chunk), merged by a heap, newest
--   first. Entries the other conditions leave out (an id prefix, a range of the other time) are
--   skipped, up to the budget; then the position reached, past the cursor, is the next cursor.
--   Filters the cells and the sort answer cost nothing.
local CELL = 4398046511104

local function score(n)
  return string.format('%.0f', n)
end

-- before says a sorts before b byte by byte, as a sorted set orders members of one score (Lua's
-- own < follows the locale Redis runs in).
local function before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x < y
    end
  end
  return #a < #b
end

-- newer says (t1, id1) comes before (t2, id2) in the listing.
local function newer(t1, id1, t2, id2)
  if t1 ~= t2 then
    return t1 > t2
  end
  return before(id2, id1)
end

local lo, hi = tonumber(ARGV[2]), tonumber(ARGV[3])
local cms, cid = tonumber(ARGV[4]), ARGV[5]
if cms and cms < hi then
  hi = cms
end
local olo, ohi = tonumber(ARGV[6]), tonumber(ARGV[7])
local prefix = ARGV[8]
local limit, budget, most = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local cells, wanted = {}, {}
for c in string.gmatch(ARGV[1], '%d+') do
  cells[#cells + 1] = tonumber(c)
  wanted[tonumber(c)] = true
end

-- listed says the entry (t, id) comes after the cursor and meets the conditions the walk does not
-- answer by its ranges; checkOther adds the other time's range (ZSCORE).
local function listed(t, id, checkOther)
  if cms and not newer(cms, cid, t, id) then
    return false
  end
  if prefix ~= '' and string.sub(id, 1, #prefix) ~= prefix then
    return false
  end
  if checkOther and olo then
    local s = redis.call('ZSCORE', KEYS[2], id)
    if not s then
      return false
    end
    local ot = tonumber(s) % CELL
    if ot < olo or ot > ohi then
      return false
    end
  end
  return true
end

local outT, outID, examined, more = {}, {}, 0, false
local lastT, lastID

-- gather reads the scores of the candidate ids, keeps those the filter selects, and takes the
-- page from the head of them: the newest limit + 1, kept in a heap (hT, hID) whose root is the
-- oldest kept, so that a candidate older than the root costs one comparison.
local function gather(ids, checkOther)
  local hT, hID, n, k = {}, {}, 0, limit + 1
  local function older(i, j) -- heap entry i comes after entry j in the listing
    return hT[i] < hT[j] or (hT[i] == hT[j] and before(hID[i], hID[j]))
  end
  local function swap(i, j)
    hT[i], hT[j], hID[i], hID[j] = hT[j], hT[i], hID[j], hID[i]
  end
  for i = 1, #ids, 500 do
    local part = {}
    for j = i, math.min(i + 499, #ids) do
      part[#part + 1] = ids[j]
    end
    local scores = redis.call('ZMSCORE', KEYS[1], unpack(part))
    for j = 1, #part do
      local s = scores[j]
      if s then
        local sc = tonumber(s)
        local t = sc % CELL
        local id = part[j]
        if t >= lo and t <= hi and wanted[(sc - t) / CELL]
            and (n < k or t > hT[1] or (t == hT[1] and before(hID[1], id))) and listed(t, id, checkOther) then
          if n < k then
            n = n + 1
            hT[n], hID[n] = t, id
            local c = n
            while c > 1 and older(c, math.floor(c / 2)) do
              swap(c, math.floor(c / 2))
              c = math.floor(c / 2)
            end
          else
            hT[1], hID[1] = t, id
            local c = 1
            while true do
              local l, r, m = 2 * c, 2 * c + 1, c
              if l <= n and older(l, m) then
                m = l
              end
              if r <= n and older(r, m) then
                m = r
              end
              if m == c then
                break
              end
              swap(c, m)
              c = m
            end
          end
        end
      end
    end
  end
  examined = #ids
  local order = {}
  for i = 1, n do
    order[i] = i
  end
  table.sort(order, function(a, b) return older(b, a) end)
  for i, h in ipairs(order) do
    outT[i], outID[i] = hT[h], hID[h]
  end
end

-- past_cursor returns the rank in KEYS[1] of the first entry of score sc (the cursor's time in a
-- cell) that comes after the cursor: the orders of that time listed already (ids at or above the
-- cursor's, which a reverse range reads first) are passed over by a binary search on rank, O(log
-- ties × log N), not read. Read, they would count against the budget: a page among more ties than
-- the budget would end where it began, or before, and the listing never end. first is the rank of
-- the first entry of score sc.
local function past_cursor(sc, first)
  local a, b = first, first + redis.call('ZCOUNT', KEYS[1], score(sc), score(sc))
  while a < b do
    local mid = math.floor((a + b) / 2)
    if before(redis.call('ZREVRANGE', KEYS[1], mid, mid)[1], cid) then
      b = mid
    else
      a = mid + 1
    end
  end
  return a
end

-- walk merges the cells, newest first, until the page is full or the budget spent. A source is a
-- cell being read: its entries read so far (ts, ids), the next (i), and its head (t, id).
local function walk()
  local heap = {}
  -- fill moves s to its next entry, reading the next chunk when it needs to; false when s is done.
  local function fill(s)
    s.i = s.i + 1
    if s.i > s.n then
      if s.done then
        return false
      end
      local r = redis.call('ZREVRANGE', KEYS[1], s.rank, s.rank + s.size - 1, 'WITHSCORES')
      s.rank = s.rank + s.size
      if #r < 2 * s.size then
        s.done = true
      end
      s.size = math.min(s.size * 4, 1024)
      s.i, s.n = 1, 0
      for j = 1, #r, 2 do
        local t = tonumber(r[j + 1]) - s.base
        if t < lo then
          s.done = true
          break
        end
        s.n = s.n + 1
        s.ts[s.n], s.ids[s.n] = t, r[j]
      end
      if s.n == 0 then
        return false
      end
    end
    s.t, s.id = s.ts[s.i], s.ids[s.i]
    return true
  end
  local function first(a, b)
    return a.t > b.t or (a.t == b.t and before(b.id, a.id))
  end
  local function down(k)
    local n = #heap
    while true do
      local l, r, m = 2 * k, 2 * k + 1, k
      if l <= n and first(heap[l], heap[m]) then
        m = l
      end
      if r <= n and first(heap[r], heap[m]) then
        m = r
      end
      if m == k then
        return
      end
      heap[k], heap[m] = heap[m], heap[k]
      k = m
    end
  end
  -- A chunk is a page's worth at first, shared among the cells, and grows as a cell is read on.
  local size = math.max(8, math.ceil((limit + 1) / #cells))
  for _, c in ipairs(cells) do
    local base = c * CELL
    local s = {base = base, ts = {}, ids = {}, i = 0, n = 0, size = size, done = false,
      rank = redis.call('ZCOUNT', KEYS[1], '(' .. score(base + hi), '+inf')}
    if cms == hi then
      s.rank = past_cursor(base + hi, s.rank)
    end
    if fill(s) then
      heap[#heap + 1] = s
    end
  end
  for k = math.floor(#heap / 2), 1, -1 do
    down(k)
  end
  local checkPrefix, np = prefix ~= '', #prefix
  while #heap > 0 and #outT <= limit do
    if examined >= budget then
      more = true
      return
    end
    local s = heap[1]
    local t, id = s.t, s.id
    examined = examined + 1
    lastT, lastID = t, id
    if (not checkPrefix or string.sub(id, 1, np) == prefix) and listed(t, id, true) then
      outT[#outT + 1], outID[#outID + 1] = t, id
    end
    if not fill(s) then
      heap[1] = heap[#heap]
      heap[#heap] = nil
    end
    if #heap > 1 then
      down(1)
    end
  end
end

if hi >= lo then
  -- The fewest candidates to gather: the ids of the prefix, or the orders in the other time's range.
  local way, count = 'walk', most + 1
  if prefix ~= '' then
    count = redis.call('ZLEXCOUNT', KEYS[3], '[' .. prefix, '(' .. prefix .. '\255')
    way = 'prefix'
  end
  if olo and count > most then
    local n = 0
    for _, c in ipairs(cells) do
      n = n + redis.call('ZCOUNT', KEYS[2], score(c * CELL + olo), score(c * CELL + ohi))
      if n > most then
        break
      end
    end
    if n < count then
      way, count = 'other', n
    end
  end
  if count > most then
    walk()
  elseif way == 'prefix' then
    gather(redis.call('ZRANGEBYLEX', KEYS[3], '[' .. prefix, '(' .. prefix .. '\255'), true)
  else
    -- Newest first, as the times usually go together: the page fills with the newest at once.
    local ids = {}
    for _, c in ipairs(cells) do
      for _, id in ipairs(redis.call('ZREVRANGEBYSCORE', KEYS[2], score(c * CELL + ohi), score(c * CELL + olo))) do
        ids[#ids + 1] = id
      end
    end
    gather(ids, false)
  end
end

local nextT, nextID = '', ''
if #outT > limit then
  outT[#outT], outID[#outID] = nil, nil
  nextT, nextID = score(outT[#outT]), outID[#outID]
elseif more then
  nextT, nextID = score(lastT), lastID
end
local reply = {nextT, nextID, examined}
if #outID > 0 then
  local sums = redis.call('HMGET', KEYS[4], unpack(outID))
  local others = redis.call('ZMSCORE', KEYS[2], unpack(outID))
  local primary = redis.call('ZMSCORE', KEYS[1], unpack(outID))
  for i, id in ipairs(outID) do
    local p = primary[i] and tonumber(primary[i]) or outT[i]
    reply[#reply + 1] = id
    reply[#reply + 1] = score(p)
    reply[#reply + 1] = score(others[i] and tonumber(others[i]) or p)
    reply[#reply + 1] = sums[i] or ''
  end
end
return reply
