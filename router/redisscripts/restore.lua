-- restore.lua: write a socket of this node back into Redis after Redis
-- lost it (restarted empty, or missed writes while unreachable): its
-- record, its place in the node's socket set, and its rooms in the order
-- it joined them. A room it is still in keeps its place; one it is missing
-- from is joined at the end of the cluster's join order.
-- KEYS: the socket, the socket's rooms, the join counter, the node's sockets.
-- ARGV: prefix, socket id, node, data (JSON), private id ('' without
-- connection state recovery), then its rooms in join order.
-- Returns each room's join order number, in the order given.
local P, id = ARGV[1], ARGV[2]
redis.call('HSET', KEYS[1], 'node', ARGV[3], 'data', ARGV[4])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'pid', ARGV[5])
  redis.call('SET', P .. 'pid:' .. ARGV[5], id)
end
redis.call('SADD', KEYS[4], id)
local seqs = {}
for i = 6, #ARGV do
  local room = ARGV[i]
  local key = P .. 'room:' .. room
  local seq = redis.call('ZSCORE', key, id)
  if not seq then
    seq = redis.call('INCR', KEYS[3])
    redis.call('ZADD', key, seq, id)
  end
  redis.call('ZADD', KEYS[2], 'NX', seq, room)
  seqs[#seqs + 1] = tonumber(seq)
end
return seqs
