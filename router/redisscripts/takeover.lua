-- takeover.lua: hand a session to the node its client recovered on:
-- suspended, or still held by another node (which lost the client without
-- noticing yet, or died). That node is told on its channel ("\ntaken
-- <id>": no delivery starts with a line break), so that it lets go of the
-- old transport now rather than at its heartbeat's timeout; its cleanup
-- finds the session is no longer its own anyway (suspend.lua, drop.lua).
-- Returns what the node needs to carry on: the socket's data, its rooms in
-- join order with their join order numbers, and the events kept after the
-- offset it was replayed up to.
-- KEYS: the socket, the suspended set, the caller's socket set.
-- ARGV: prefix, socket id, pid, caller node, offset.
-- Returns {0} when it cannot be recovered (gone, expired, another pid),
-- else {1, data, {room, seq, ...}, events}.
local P, id, pid, me, after = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local h = redis.call('HMGET', KEYS[1], 'pid', 'node', 'data')
if not h[1] or h[1] ~= pid then return {0} end
local deadline = redis.call('ZSCORE', KEYS[2], id)
if (h[2] == '' and not deadline) or (deadline and tonumber(deadline) < nowMs()) then
  return {0}
end
if deadline then redis.call('ZREM', KEYS[2], id) end
if h[2] ~= '' then
  redis.call('SREM', P .. 'nodesocks:' .. h[2], id)
  if h[2] ~= me then
    redis.call('PUBLISH', P .. 'deliver:' .. h[2], '\ntaken ' .. id)
  end
end
redis.call('HSET', KEYS[1], 'node', me)
redis.call('SADD', KEYS[3], id)
local events = {}
if streamId(after) then
  events = redis.call('XRANGE', P .. 'inbox:' .. id, '(' .. after, '+')
end
return {1, h[3], redis.call('ZRANGE', P .. 'rooms:' .. id, 0, -1, 'WITHSCORES'), events}
