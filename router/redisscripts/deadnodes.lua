-- deadnodes.lua: the nodes that registered (heartbeat) and whose liveness
-- key has expired, other than the caller, and not claimed right now.
-- KEYS: the set of nodes. ARGV: prefix, the caller's node id.
local P = ARGV[1]
local dead = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if node ~= ARGV[2] and redis.call('EXISTS', P .. 'node:' .. node) == 0
      and redis.call('EXISTS', P .. 'claim:' .. node) == 0 then
    dead[#dead + 1] = node
  end
end
table.sort(dead)
return dead
