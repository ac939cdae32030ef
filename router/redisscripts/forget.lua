-- forget.lua: a socket's disconnect cleanup, in one step. It leaves every
-- room the socket is in, drops the entries of the rooms it empties in
-- room-scoped stores and its own in socket-scoped stores, and deletes its
-- record and its place in its node's socket set.
-- KEYS: the socket, the socket's rooms. ARGV: prefix, socket id.
-- Returns the rooms it emptied, in the order the socket joined them.
local P, id = ARGV[1], ARGV[2]
local decl = scopes(P)
local emptied = {}
for _, room in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local key = P .. 'room:' .. room
  if redis.call('ZREM', key, id) == 1 and redis.call('EXISTS', key) == 0 then
    emptied[#emptied + 1] = room
    dropEntries(P, decl, 'room', room)
  end
end
dropEntries(P, decl, 'socket', id)
local node = redis.call('HGET', KEYS[1], 'node')
if node then
  redis.call('SREM', P .. 'nodesocks:' .. node, id)
end
redis.call('DEL', KEYS[1], KEYS[2])
return emptied
