-- session.lua: find the session a reconnecting client names by its
-- private id, and what was sent to it after its offset. It changes
-- nothing (the client may yet be refused by the auth check): takeover.lua
-- hands the session over. A session some of whose events after the offset
-- were dropped (over the cap) cannot be replayed in order: it is taken for
-- its disconnect cleanup, which the caller runs. So is the session of a
-- client that came back as a new socket (offset ''): it has given it up.
-- KEYS: the pid's index, the suspended set. ARGV: prefix, pid, offset ('':
-- the client gave the session up).
-- Returns {0} none, {1, id, rooms, events} found, {2, id} for cleanup.
-- events are {offset, {'e', event}} entries.
local P, pid, offset = ARGV[1], ARGV[2], ARGV[3]
local id = redis.call('GET', KEYS[1])
if not id then return {0} end
local sk = P .. 'sock:' .. id
local h = redis.call('HMGET', sk, 'pid', 'node', 'trim')
if h[1] ~= pid then return {0} end
local deadline = redis.call('ZSCORE', KEYS[2], id)
if h[2] == '' and not deadline then
  return {0} -- being cleaned up
end

-- take hands the session to the caller for its cleanup, from whichever
-- state it is in: the pid proves its client is done with it.
local function take()
  if deadline then redis.call('ZREM', KEYS[2], id) end
  if h[2] ~= '' then redis.call('SREM', P .. 'nodesocks:' .. h[2], id) end
  redis.call('HSET', sk, 'node', '')
  return {2, id}
end

if offset == '' then return take() end
if not streamId(offset) or (deadline and tonumber(deadline) < nowMs()) then
  return {0} -- not an offset of ours; or expired, and the watcher cleans it up
end
if h[3] and idLess(offset, h[3]) then return take() end
local events = redis.call('XRANGE', P .. 'inbox:' .. id, '(' .. offset, '+')
return {1, id, redis.call('ZRANGE', P .. 'rooms:' .. id, 0, -1), events}
