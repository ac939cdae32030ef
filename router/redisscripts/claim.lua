-- claim.lua: take the cleanup of a dead node, once. The claim is a key set
-- only if absent (SET NX) and expiring, so of competing claimers exactly
-- one wins, and a claimer that dies mid-cleanup frees the node for another
-- once the claim expires.
-- KEYS: the set of nodes, the dead node's liveness key, its claim key, its
-- socket set. ARGV: prefix, dead node id, claimer id, claim ttl in ms.
-- Returns {1, sockets} when claimed, {0, {}} when the node is alive again,
-- unknown (cleaned up already) or claimed by another.
if redis.call('SISMEMBER', KEYS[1], ARGV[2]) == 0 or redis.call('EXISTS', KEYS[2]) == 1 then
  return {0, {}}
end
if not redis.call('SET', KEYS[3], ARGV[3], 'NX', 'PX', ARGV[4]) then
  return {0, {}}
end
return {1, redis.call('SMEMBERS', KEYS[4])}
