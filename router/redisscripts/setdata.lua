-- setdata.lua: replace a socket's data, unless the socket is gone (a
-- write must not bring back a socket another node has forgotten).
-- KEYS: the socket. ARGV: prefix, the data as a JSON object.
-- Returns 1 if written, 0 if the socket is not registered.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'data', ARGV[2])
return 1
