-- join.lua: add a socket to a room, returning the members before it.
-- KEYS: room members, the socket's rooms, the join counter, the socket.
-- ARGV: prefix, socket id, room.
-- Returns {status, before, seq}: 1 added, 0 already a member (nothing changes),
-- -1 the socket is not registered (forgotten, perhaps by a node that took
-- its node for dead), and nothing changes. before is the room's members in
-- join order as they were when the script ran: scripts run one at a time,
-- so of two sockets joining at once exactly one sees the other. seq is the
-- joiner's place in the cluster's join order (0 unless added): what the
-- joining event sends to the room goes only to members with a lower one.
local before = redis.call('ZRANGE', KEYS[1], 0, -1)
-- Sockets whose disconnect cleanup has begun (registry.leaving) are not
-- counted: the newcomer would be told of a peer whose leave was announced
-- before it joined. The set is nearly always empty.
local leaving = ARGV[1] .. 'leaving'
if redis.call('SCARD', leaving) > 0 then
  local kept = {}
  for _, m in ipairs(before) do
    if redis.call('SISMEMBER', leaving, m) == 0 then
      kept[#kept + 1] = m
    end
  end
  before = kept
end
if redis.call('EXISTS', KEYS[4]) == 0 then
  return {-1, before, 0}
end
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  return {0, before, 0}
end
local seq = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[1], seq, ARGV[2])
redis.call('ZADD', KEYS[2], seq, ARGV[3])
return {1, before, seq}
