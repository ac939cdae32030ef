-- drop.lua: take a socket of the caller's node for its disconnect
-- cleanup (connection state recovery in a cluster). It leaves the node
-- and cannot be recovered any more; the caller then runs the cleanup,
-- whose forget.lua deletes it. A socket another node has taken over is
-- not the caller's to clean up.
-- KEYS: the socket. ARGV: prefix, socket id, caller node.
-- Returns 1 taken, 0 not the caller's.
local P, id, me = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', KEYS[1], 'node') ~= me then return 0 end
redis.call('SREM', P .. 'nodesocks:' .. me, id)
redis.call('HSET', KEYS[1], 'node', '')
return 1
