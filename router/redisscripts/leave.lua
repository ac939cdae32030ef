-- leave.lua: take a socket out of a room, returning the members left.
-- KEYS: room members, the socket's rooms. ARGV: prefix, socket id, room.
-- Returns {removed, remaining}: removed is 1 if the socket was a member.
-- The socket that empties a room also drops the room's entries in every
-- room-scoped store, in the same step, whichever node it is on.
local removed = redis.call('ZREM', KEYS[1], ARGV[2])
if removed == 1 then
  redis.call('ZREM', KEYS[2], ARGV[3])
end
local remaining = redis.call('ZRANGE', KEYS[1], 0, -1)
if removed == 1 and #remaining == 0 then
  dropEntries(ARGV[1], scopes(ARGV[1]), 'room', ARGV[3])
end
return {removed, remaining}
