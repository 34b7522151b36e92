-- Takes an order's lease and reads what its holder needs first, in one round trip; for a new
-- order it also writes the holder's first state (the intent of a registration), which would
-- otherwise take a round trip of its own.
--
-- KEYS[1] the lease, KEYS[2] the state, KEYS[3] the set of orders under review, KEYS[4] the record
-- of the event being handled.
-- ARGV[1] the lease token, ARGV[2] the lease's lifetime (ms), ARGV[3] '1' to check the event
-- record; ARGV[4] the state to write if there is none and the event was not processed, or '';
-- ARGV[5] the order's member of the set, ARGV[6] '1' if that state is under review.
--
-- Returns nil if another holder has the lease, else {state or '', 1 if the event was processed,
-- 1 if the state returned was written just now}.
-- A lease already held with this token is this holder's: the client resent the script after a
-- lost reply.
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return nil
end
local done = 0
if ARGV[3] == '1' then
  done = redis.call('EXISTS', KEYS[4])
end
local st = redis.call('GET', KEYS[2])
local created = 0
if not st and done == 0 and ARGV[4] ~= '' then
  st = ARGV[4]
  created = 1
  redis.call('SET', KEYS[2], st)
  if ARGV[6] == '1' then
    redis.call('SADD', KEYS[3], ARGV[5])
  end
end
return {st or '', done, created}
