-- inbox.lua: keep an event for each of its recipients and tell their
-- nodes, in one step (connection state recovery in a cluster). Each
-- recipient's stream gets the event (XADD); the id is the offset the
-- client will report, so a session recovered on any node is replayed what
-- came after it. Every node that holds recipients, the caller's own
-- included, is told on its channel, one message per node: "<id>
-- <offset>\n" per recipient, an empty line, the event. Why the caller's
-- own too: scripts run one at a time and a channel's messages arrive in
-- the order they were published, so a node that delivers only what its
-- channel brings delivers each socket's events in the order of their
-- offsets, whichever node sent them. Were the caller to deliver to its own
-- sockets when the script returns, that delivery would race with what
-- other nodes' scripts published before it, and a client could see a
-- later offset first (and, recovering with it, be replayed or skip
-- events). Suspended recipients (node '') are kept, not published.
-- KEYS: the suspended sessions (for the hash tag only).
-- ARGV: prefix, caller node (unused), cap, window ms, event (JSON array), mode ('r':
-- the targets are rooms, 's': socket ids), except (a socket id or ''),
-- before (0, or only room members that joined before this join order
-- number), sender ('' or a socket id: then the one target must exist and,
-- with shared '1', share a room with it), shared, targets...
-- Returns {status, {id, offset, id, offset, ...}}: 0 kept, 1 the target is
-- not registered, 2 it shares no room with the sender.
local P, cap, window, text = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local mode, except, before, sender, shared = ARGV[6], ARGV[7], tonumber(ARGV[8]), ARGV[9], ARGV[10]
local targets = {}
if mode == 'r' then
  local seen = {}
  for i = 11, #ARGV do
    local list = redis.call('ZRANGE', P .. 'room:' .. ARGV[i], 0, -1, 'WITHSCORES')
    for j = 1, #list, 2 do
      local id = list[j]
      if not seen[id] and id ~= except and (before == 0 or tonumber(list[j + 1]) < before) then
        seen[id] = true
        targets[#targets + 1] = id
      end
    end
  end
else
  for i = 11, #ARGV do
    if ARGV[i] ~= except then targets[#targets + 1] = ARGV[i] end
  end
end
if sender ~= '' then
  if redis.call('EXISTS', P .. 'sock:' .. targets[1]) == 0 then
    return {1, {}}
  end
  if shared == '1' and redis.call('ZINTERCARD', 2, P .. 'rooms:' .. sender, P .. 'rooms:' .. targets[1], 'LIMIT', 1) == 0 then
    return {2, {}}
  end
end
local minid = nowMs() - window
local out, remote = {}, {}
for _, id in ipairs(targets) do
  local sk = P .. 'sock:' .. id
  local node = redis.call('HGET', sk, 'node')
  if node then
    local ik = P .. 'inbox:' .. id
    if redis.call('XLEN', ik) >= cap then
      -- The oldest is about to go: a client that had not seen it can no
      -- longer be replayed what it missed (session.lua).
      local oldest = redis.call('XRANGE', ik, '-', '+', 'COUNT', 1)
      redis.call('HSET', sk, 'trim', oldest[1][1])
    end
    local off = redis.call('XADD', ik, 'MAXLEN', cap, '*', 'e', text)
    redis.call('XTRIM', ik, 'MINID', minid)
    redis.call('PEXPIRE', ik, 2 * window)
    out[#out + 1] = id
    out[#out + 1] = off
    if node ~= '' then
      remote[node] = (remote[node] or '') .. id .. ' ' .. off .. '\n'
    end
  end
end
for node, lines in pairs(remote) do
  redis.call('PUBLISH', P .. 'deliver:' .. node, lines .. '\n' .. text)
end
return {0, out}
