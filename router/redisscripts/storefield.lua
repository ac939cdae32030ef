-- storefield.lua: write or delete one field of a store entry, read,
-- changed and written back in one step, so concurrent writes of different
-- fields from different nodes all land.
-- KEYS: the store. ARGV: prefix, entry key, field (as a JSON string, as
-- the Go side writes keys), value JSON ('' deletes the field), mode.
-- mode 'set' is storeSetField: an entry that is not an object is replaced
-- by one holding the field. mode 'del' is storeDeleteField: an entry that
-- is not an object, or lacks the field, is left as it is.
-- An entry left without fields is deleted. The other fields' values are
-- kept byte for byte. Returns the entry's JSON afterwards, or nil if none.
local old = redis.call('HGET', KEYS[1], ARGV[2])
local keys, vals
if old then
  keys, vals = members(old)
end
if not keys then
  if ARGV[5] == 'del' then
    return old
  end
  keys, vals = {}, {}
end
local at
for i, k in ipairs(keys) do
  if k == ARGV[3] then
    at = i
    break
  end
end
if ARGV[5] == 'del' and not at then
  return old
end
if ARGV[4] == '' then
  if at then
    table.remove(keys, at)
    table.remove(vals, at)
  end
elseif at then
  vals[at] = ARGV[4]
else
  keys[#keys + 1] = ARGV[3]
  vals[#vals + 1] = ARGV[4]
end
if #keys == 0 then
  redis.call('HDEL', KEYS[1], ARGV[2])
  return false
end
local entry = object(keys, vals)
redis.call('HSET', KEYS[1], ARGV[2], entry)
return entry
