-- Writes an order's state as a compare-and-set on its version and, in the same atomic step,
-- keeps the set of orders under review in step, appends to the order's history, records an event
-- as processed, removes the inbox entry it applied and releases the order's lease, unless the
-- inbox holds more for the holder to apply. One script, so that the last write of a handler is
-- one round trip.
--
-- Written with the state, in the same step: the order's entry in its shop's index (index.lua), and
-- the expiry of the state and of its history, one retention after the order last changed in the
-- index's eyes (State.ChangedAt).
--
-- KEYS[1] the state, KEYS[2] the set of orders under review, KEYS[3] the lease, KEYS[4] the
-- event record, KEYS[5] the order's history, KEYS[6] the order's inbox, KEYS[7] the timer index
-- (a sorted set of the orders that rely on a JetStream timer, by when it is due, in ms), KEYS[8]
-- to KEYS[11] the shop's index: by time changed, by time ordered, by id, the summaries, KEYS[12]
-- the order's data kept for re-authorization, KEYS[13] the shop's held re-checks (a sorted set of
-- the orders whose next re-check waits in Redis to be handed to JetStream, by when it is due, in ms).
-- ARGV[1] the version the stored state must have (0: none stored), or at least have if ARGV[2] is
-- ''; ARGV[2] the new state (JSON), or '' to write none; ARGV[3] the order's member of the set;
-- ARGV[4] '1' if the order is under review; ARGV[5] the lease token, or '' to keep the lease;
-- ARGV[6] how long to keep the event record (ms), or '' to record none; ARGV[7] how many history
-- entries to keep; ARGV[8] the inbox entry applied, removed if it is first in the inbox, or '';
-- ARGV[9] the lease's lifetime (ms) to keep it while the inbox is not empty, or '' to release it in
-- any case; ARGV[10] an entry to put first in the inbox, in place of ARGV[8] if that is first, else
-- in front of the others (an event to retry, before those queued after it), or ''; ARGV[11] when
-- the new state's earliest timer is due (ms), or '' if it relies on none; ARGV[12] when the inbox's
-- timer is due (ms), indexed if the inbox is not empty after the write; ARGV[13] how long the state
-- and its history live (ms); ARGV[14] the order's id in the index; ARGV[15] and ARGV[16] its index
-- scores by time changed and ordered (index_put); ARGV[17] its index summary; ARGV[18] the
-- retention cutoff (ms) of the index's trim; ARGV[19] what to do with the order's data: '' nothing,
-- 's' set it to ARGV[20], 'k' keep it as long as the state, 'd' delete it; ARGV[21] when the
-- re-check the state holds back is due (ms), to add to the held re-checks, or ''; ARGV[22] what the
-- event record holds (the event's digest, Take.EventDigest), with ARGV[6]; ARGV[23] and ARGV[24]
-- '"key":"<identity>"' and '"digest":"<digest>"' of an event the write ends without recording it
-- (it failed, or is a copy), whose copies in the inbox are removed (inbox.lua's drop_copies), or '';
-- ARGV[25...] the history entries to append (JSON).
--
-- Returns {ok, next}: ok is 1, or 0 if the stored version differs from ARGV[1] (in a write of no
-- state: is below it, or the event to record is not recorded and the lease is not ARGV[5]'s; then
-- nothing is written or recorded, and the lease is still released); next is the inbox's first entry
-- when the lease is kept for it, else false.

-- Redis does not undo a script that fails halfway: what the writes below need is checked first.
if ARGV[2] ~= '' and not (tonumber(ARGV[13]) and tonumber(ARGV[15]) and tonumber(ARGV[16])
    and (ARGV[18] == '' or tonumber(ARGV[18]))) then
  return redis.error_reply('write.lua: malformed retention or index arguments')
end
-- version_of is the version of a stored state document (or of its first bytes): 0 for none, -1
-- for a document it cannot read. The version is the first member of the document (Go encodes
-- struct fields in order), so it is read without decoding the rest, outbox and all.
local function version_of(doc)
  if not doc or doc == '' then
    return 0
  end
  return tonumber(string.match(doc, '^{"version":(%d+)')) or -1
end

local ok = 1
local resent = false
if ARGV[2] ~= '' then
  local cur = redis.call('GET', KEYS[1])
  local version = version_of(cur)
  if cur == ARGV[2] then
    -- This very write is stored (its document holds a nanosecond timestamp): the client resent
    -- the script after a lost reply. It succeeded, history included; finish the rest.
    resent = true
  elseif version ~= tonumber(ARGV[1]) then
    ok = 0
  else
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[13])
    -- The index is written when what it shows changed: the "ix" of the stored state (its second
    -- member) against the new one's (State.Index: the scores and the summary). A write that
    -- changes nothing it shows (an outbox published, a re-check still under review) touches no
    -- index key.
    if not cur or string.match(cur, '^{"version":%d+,"ix":"([^"]*)"') ~= ARGV[15] .. '|' .. ARGV[16] .. '|' .. ARGV[17] then
      index_put(KEYS[8], KEYS[9], KEYS[10], KEYS[11], ARGV[14], ARGV[15], ARGV[16], ARGV[17], ARGV[18])
    end
    if ARGV[4] == '1' then
      redis.call('SADD', KEYS[2], ARGV[3])
    else
      redis.call('SREM', KEYS[2], ARGV[3])
    end
    if ARGV[11] ~= '' then
      redis.call('ZADD', KEYS[7], ARGV[11], ARGV[3])
    else
      redis.call('ZREM', KEYS[7], ARGV[3])
    end
    if ARGV[19] == 's' then
      redis.call('SET', KEYS[12], ARGV[20], 'PX', ARGV[13])
    elseif ARGV[19] == 'k' then
      redis.call('PEXPIRE', KEYS[12], ARGV[13])
    elseif ARGV[19] == 'd' then
      redis.call('DEL', KEYS[12])
    end
    if ARGV[21] ~= '' then
      redis.call('ZADD', KEYS[13], ARGV[21], ARGV[3])
    end
  end
else
  -- A commit of no state follows a state its handler read or wrote (the handler's own steps may
  -- have written later ones). Gone (Redis flushed, or failed over to a replica behind), the
  -- event's effects went with it: recording the event would have its copy dropped as applied and
  -- the event lost, so nothing is recorded and the event is handled again. The version is read
  -- from the document's first bytes alone. A state rebuilt past that version by another handler
  -- after a flush took the lease with it: an event is recorded only under its own lease.
  if version_of(redis.call('GETRANGE', KEYS[1], 0, 31)) < tonumber(ARGV[1]) then
    ok = 0
  elseif ARGV[6] ~= '' and redis.call('GET', KEYS[4]) == ARGV[22] then
    resent = true -- the event is recorded already: this commit was sent before
  elseif ARGV[6] ~= '' and ARGV[5] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[5] then
    ok = 0
  end
end
if ok == 1 and not resent and #ARGV > 24 then
  local n = 0
  for i = 25, #ARGV do
    n = redis.call('RPUSH', KEYS[5], ARGV[i])
  end
  if n > tonumber(ARGV[7]) then
    redis.call('LTRIM', KEYS[5], -tonumber(ARGV[7]), -1)
  end
  if ARGV[2] ~= '' then
    redis.call('PEXPIRE', KEYS[5], ARGV[13]) -- the order has a state: its history lasts as long
  end
end
if ok == 1 and ARGV[6] ~= '' then
  redis.call('SET', KEYS[4], ARGV[22], 'PX', ARGV[6])
end
local queued = 0 -- the inbox's length after the write
if ok == 1 then
  local first = ARGV[8] ~= '' and redis.call('LINDEX', KEYS[6], 0) == ARGV[8]
  if ARGV[10] ~= '' and first then
    redis.call('LSET', KEYS[6], 0, ARGV[10])
  elseif ARGV[10] ~= '' and ARGV[8] == '' then
    redis.call('LPUSH', KEYS[6], ARGV[10])
  elseif first then
    redis.call('LPOP', KEYS[6])
  end
  if ARGV[10] ~= '' then
    drop_copies(KEYS[6], 1, ARGV[23], ARGV[24]) -- the event's own entry is first
  else
    drop_copies(KEYS[6], 0, ARGV[23], ARGV[24])
  end
  queued = redis.call('LLEN', KEYS[6])
  if queued > 0 then
    redis.call('ZADD', KEYS[7], 'LT', ARGV[12], ARGV[3])
  end
end
if ARGV[5] ~= '' and redis.call('GET', KEYS[3]) == ARGV[5] then
  if ok == 1 and ARGV[9] ~= '' and queued > 0 then
    local next = redis.call('LINDEX', KEYS[6], 0)
    if next then
      redis.call('PEXPIRE', KEYS[3], ARGV[9])
      return {ok, next}
    end
  end
  redis.call('DEL', KEYS[3])
end
return {ok, false}
