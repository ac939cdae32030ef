-- expired.lua: take the suspended sessions whose window has passed, for
-- the caller to clean up. Scripts run one at a time, so each is taken by
-- exactly one node: once out of the set, with no node, a session can be
-- neither recovered (session.lua, takeover.lua) nor taken again.
-- KEYS: the suspended set. ARGV: prefix, how many at most.
-- Returns {ids taken, how many sessions are left suspended}.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', nowMs(), 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
end
return {ids, redis.call('ZCARD', KEYS[1])}
