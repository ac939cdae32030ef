-- suspend.lua: a socket of the caller's node lost its transport and may be
-- recovered on any node within the window: it leaves its node and waits
-- in the suspended set, scored by its deadline, keeping its record, rooms,
-- stores and stream. A socket another node has taken over (its client
-- recovered there while this node still held the old transport) is left
-- alone.
-- KEYS: the socket, the suspended set. ARGV: prefix, socket id, caller
-- node, window ms.
-- Returns 1 suspended, 0 not the caller's (taken over), -1 not registered.
local P, id, me = ARGV[1], ARGV[2], ARGV[3]
local node = redis.call('HGET', KEYS[1], 'node')
if not node then return -1 end
if node ~= me then return 0 end
redis.call('SREM', P .. 'nodesocks:' .. me, id)
redis.call('HSET', KEYS[1], 'node', '')
redis.call('ZADD', KEYS[2], nowMs() + tonumber(ARGV[4]), id)
return 1
