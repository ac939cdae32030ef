-- release.lua: end the cleanup of a claimed dead node. If the claim is
-- still the caller's and the node holds no sockets any more, the node is
-- forgotten and the claim deleted; else the claim is left to expire, so
-- the node is claimed and cleaned up again.
-- KEYS: the set of nodes, the claim key, the node's socket set.
-- ARGV: prefix, dead node id, claimer id.
-- Returns the number of the node's sockets still registered, or -1 if the
-- claim is not the caller's.
if redis.call('GET', KEYS[2]) ~= ARGV[3] then
  return -1
end
local left = redis.call('SCARD', KEYS[3])
if left == 0 then
  redis.call('SREM', KEYS[1], ARGV[2])
  redis.call('DEL', KEYS[2])
end
return left
