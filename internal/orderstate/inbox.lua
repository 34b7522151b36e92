-- An order's inbox (docs/architecture.md#order-state-in-redis): the functions acquire.lua and
-- write.lua share to find the copies of one event in it. This file is put in front of them; it
-- runs nothing itself.
--
-- A copy of an event has the event's identity and its digest: it came when the event's message was
-- delivered again (a lost acknowledgement), handled again in place (a lost reply), or delivered
-- while the event was being tried. Another event under a reused identity (other content) is no
-- copy, and neither is an entry written without a digest. key is '"key":"<identity>"' and digest
-- '"digest":"<digest>"'; each entry starts {"type":…,"key":…}, so only its start is read for the
-- key.
local function is_copy(e, key, digest)
  return string.find(string.sub(e, 1, 160), key, 1, true) and string.find(e, digest, 1, true)
end

-- inbox_holds says whether the inbox holds a copy of the event.
local function inbox_holds(inbox, key, digest)
  if key == '' or digest == '' then
    return false
  end
  for _, e in ipairs(redis.call('LRANGE', inbox, 0, -1)) do
    if is_copy(e, key, digest) then
      return true
    end
  end
  return false
end

-- drop_copies removes the inbox's copies of the event after its first entry (from its second if
-- from is 1, from its first if 0): the write that calls it ends the event they copy without
-- recording it (dead-lettered, or kept first for its retry), and each copy would otherwise be tried
-- again, after a dead letter too. (An event applied leaves its copies: its record makes each a
-- duplicate.)
local function drop_copies(inbox, from, key, digest)
  if key == '' or digest == '' then
    return
  end
  for _, e in ipairs(redis.call('LRANGE', inbox, from, -1)) do
    if is_copy(e, key, digest) then
      redis.call('LREM', inbox, -1, e) -- the last of its value: never the first entry when from is 1
    end
  end
end
