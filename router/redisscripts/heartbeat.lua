-- heartbeat.lua: a node says it is alive for another ttl.
-- KEYS: the node's liveness key, the set of nodes, the node's claim key.
-- ARGV: prefix, node id, ttl in milliseconds, the time (for operators).
-- Returns 1 if another node has claimed this one as dead meanwhile (its
-- sockets are being, or were, cleaned up), else 0.
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[2])
return redis.call('EXISTS', KEYS[3])
