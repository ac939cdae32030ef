-- forget.lua: a socket's disconnect cleanup, in one step. It leaves every
-- room the socket is in, drops the entries of the rooms it empties in
-- room-scoped stores and its own in socket-scoped stores, and deletes its
-- record and its place in its node's socket set, and what connection state
-- recovery in a cluster keeps for it: its stream of events, its place in
-- the suspended set and its private id's index.
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
local h = redis.call('HMGET', KEYS[1], 'node', 'pid')
if h[1] then
  redis.call('SREM', P .. 'nodesocks:' .. h[1], id)
end
if h[2] then
  redis.call('DEL', P .. 'pid:' .. h[2])
end
redis.call('ZREM', P .. 'suspended', id)
redis.call('SREM', P .. 'leaving', id)
redis.call('DEL', KEYS[1], KEYS[2], P .. 'inbox:' .. id)
return emptied
