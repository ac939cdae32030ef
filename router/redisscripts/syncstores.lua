-- syncstores.lua: make the cluster's store declarations those of a rules
-- set. A store keeping its name and scope keeps its entries; one whose
-- scope changed starts empty; one no longer declared is deleted.
-- KEYS: the declarations hash. ARGV: prefix, then name, scope pairs.
local P = ARGV[1]
local want = {}
for i = 2, #ARGV, 2 do
  want[ARGV[i]] = ARGV[i + 1]
end
local have = scopes(P)
for name, scope in pairs(have) do
  if want[name] ~= scope then
    redis.call('DEL', P .. 'store:' .. name)
    redis.call('HDEL', KEYS[1], name)
  end
end
for name, scope in pairs(want) do
  if have[name] ~= scope then
    redis.call('DEL', P .. 'store:' .. name)
    redis.call('HSET', KEYS[1], name, scope)
  end
end
return 1
