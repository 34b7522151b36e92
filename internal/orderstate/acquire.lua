-- Takes an order's lease and reads what its holder needs first, in one round trip; for a new
-- order it also writes the holder's first state (the intent of a registration), which would
-- otherwise take a round trip of its own. An event that finds the lease held is queued in the
-- order's inbox instead, for the holder to apply, so that a burst of events for one order holds
-- no handler waiting.
--
-- KEYS[1] the lease, KEYS[2] the state, KEYS[3] the set of orders under review, KEYS[4] the record
-- of the event being handled, KEYS[5] the order's inbox, KEYS[6] the timer index, KEYS[7] to
-- KEYS[10] the shop's index (index.lua), where the first state is filed as it is written (given
-- with a first state only).
-- ARGV[1] the lease token, ARGV[2] the lease's lifetime (ms), ARGV[3] '1' to check the event
-- record; ARGV[4] the state to write if there is none and the event was not processed, or '';
-- ARGV[5] the order's member of the set, ARGV[6] '1' if that state is under review; ARGV[7] the
-- event as an inbox entry, or '' to never queue it; ARGV[8] the most entries the inbox may hold;
-- ARGV[9] '1' if the caller has an entry it did not send (it is sent only when needed: most takes
-- find the lease free and the inbox empty); ARGV[10] when the timer of a queued event is due (ms),
-- indexed; for the first state: ARGV[11] how long it lives (ms), ARGV[12] the
-- order's id in the index, ARGV[13] and ARGV[14] its index scores, ARGV[15] its index summary,
-- ARGV[16] the retention cutoff (ms) of the index's trim; ARGV[17] '"key":"<the event's identity>"'
-- and ARGV[18] '"digest":"<its content's digest>"' with an entry that has a digest, or ''.
--
-- Returns nil if another holder has the lease and the event was not queued; {'', 0, 0, 'entry'}
-- if the inbox holds events and the caller has an entry it did not send (the lease is not taken:
-- call again with the entry, to be put behind them); {'', the inbox's length, 0, 'queued'} if it (or a copy of it: inbox_holds)
-- was queued; else {state or '', the event's record ('' if none: the event was not processed; a
-- record holds the digest of the event it was written for, or '1' from before digests), 1 if the
-- first state was written just now (then the state returned is '': the caller has it), mode} where mode is 'drain' (the lease is taken, and the inbox holds older events: the
-- event was put last in it when it was given as an entry; the first state is not written) or ''
-- (the lease is taken). A lease already held with this token is this holder's: the client
-- resent the script after a lost reply.

-- Redis does not undo a script that fails halfway: what the writes below need is checked first.
if ARGV[4] ~= '' and not (tonumber(ARGV[11]) and tonumber(ARGV[13]) and tonumber(ARGV[14])
    and (ARGV[16] == '' or tonumber(ARGV[16]))) then
  return redis.error_reply('acquire.lua: malformed retention or index arguments')
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  if ARGV[7] ~= '' and inbox_holds(KEYS[5], ARGV[17], ARGV[18]) then
    return {'', redis.call('LLEN', KEYS[5]), 0, 'queued'}
  end
  if ARGV[7] ~= '' and redis.call('LLEN', KEYS[5]) < tonumber(ARGV[8]) then
    local n = redis.call('RPUSH', KEYS[5], ARGV[7])
    redis.call('ZADD', KEYS[6], 'LT', ARGV[10], ARGV[5])
    return {'', n, 0, 'queued'}
  end
  return nil
end
local mode = ''
if redis.call('LLEN', KEYS[5]) > 0 then
  if ARGV[7] == '' and ARGV[9] == '1' then
    redis.call('DEL', KEYS[1])
    return {'', 0, 0, 'entry'}
  end
  mode = 'drain'
  if ARGV[7] ~= '' and not inbox_holds(KEYS[5], ARGV[17], ARGV[18]) then
    redis.call('RPUSH', KEYS[5], ARGV[7])
  end
end
local record = false
if ARGV[3] == '1' then
  record = redis.call('GET', KEYS[4])
end
local st = redis.call('GET', KEYS[2])
local created = 0
-- An event recorded, as a copy or as another event under the same identity, writes no first state.
if not st and not record and ARGV[4] ~= '' and mode == '' then
  created = 1
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[11])
  index_put(KEYS[7], KEYS[8], KEYS[9], KEYS[10], ARGV[12], ARGV[13], ARGV[14], ARGV[15], ARGV[16])
  if ARGV[6] == '1' then
    redis.call('SADD', KEYS[3], ARGV[5])
  end
end
return {st or '', record or '', created, mode}
