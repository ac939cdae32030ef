-- depart.lua: a node that stops cleanly says so, so that no other node
-- takes it for dead: with none of its sockets left registered, it leaves
-- the set of nodes and its liveness key is deleted. With sockets left (a
-- Redis call failed during its shutdown), only the liveness key is
-- deleted: the others find it dead at their next check, rather than
-- after the key's ttl, and deal with those sockets (claim.lua).
-- KEYS: the set of nodes, the node's liveness key, its socket set.
-- ARGV: prefix, node id.
-- Returns the number of the node's sockets still registered.
local left = redis.call('SCARD', KEYS[3])
redis.call('DEL', KEYS[2])
if left == 0 then
  redis.call('SREM', KEYS[1], ARGV[2])
end
return left
