-- relay.lua: deliver a relay envelope to a socket of another node in one
-- round trip: the checks the relay makes and the publish, together.
-- KEYS: the target's socket, the sender's rooms, the target's rooms.
-- ARGV: prefix, channel, payload (the bus's encoded broadcast), "1" when the
-- target must share a room with the sender.
-- Returns 0 published, 1 no such socket, 2 no room shared.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 1
end
if ARGV[4] == '1' and redis.call('ZINTERCARD', 2, KEYS[2], KEYS[3], 'LIMIT', 1) == 0 then
  return 2
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 0
