-- Takes an order's lease and reads what its holder needs first, in one round trip.
--
-- KEYS[1] the lease, KEYS[2] the state, KEYS[3] (optional) the record of the event being handled.
-- ARGV[1] the lease token, ARGV[2] the lease's lifetime (ms).
--
-- Returns nil if another holder has the lease, else {state or '', 1 if the event was processed}.
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return nil
end
local done = 0
if KEYS[3] then
  done = redis.call('EXISTS', KEYS[3])
end
return {redis.call('GET', KEYS[2]) or '', done}
