-- suspendnode.lua: the sockets of a dead node that the caller claimed
-- (claim.lua) become suspended sessions, with the window counted from now
-- (when the death was noticed), instead of being cleaned up: their
-- clients may recover them on any node. Sockets their clients recovered
-- elsewhere meanwhile have left the node's set already.
-- KEYS: the suspended set, the dead node's socket set. ARGV: prefix, dead
-- node, window ms.
-- Returns the number suspended.
local P, dead = ARGV[1], ARGV[2]
local deadline = nowMs() + tonumber(ARGV[3])
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local sk = P .. 'sock:' .. id
  if redis.call('HGET', sk, 'node') == dead then
    redis.call('HSET', sk, 'node', '')
    redis.call('ZADD', KEYS[1], deadline, id)
    n = n + 1
  end
  redis.call('SREM', KEYS[2], id)
end
return n
