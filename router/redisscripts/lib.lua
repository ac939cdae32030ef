-- lib.lua: helpers shared by the registry's scripts, prepended to each one
-- (registry_redis.go). Every script gets the key prefix as ARGV[1]: it
-- carries the registry's hash tag, so the keys a script builds from it (a
-- room's, a store's) lie in the slot of the keys it was given.

-- scopes maps each store the cluster declares (the P.."stores" hash,
-- written by syncStores) to its scope: "socket", "room" or "global".
local function scopes(P)
  local decl = redis.call('HGETALL', P .. 'stores')
  local out = {}
  for i = 1, #decl, 2 do
    out[decl[i]] = decl[i + 1]
  end
  return out
end

-- dropEntries deletes key from every store of the given scope: a room's
-- entries when it empties, a socket's when it is forgotten.
local function dropEntries(P, decl, scope, key)
  for name, s in pairs(decl) do
    if s == scope then
      redis.call('HDEL', P .. 'store:' .. name, key)
    end
  end
end

-- The entries of stores are JSON written by the registry's Go side. A
-- field is written or deleted without decoding the rest of the entry:
-- cjson would turn [] into {} and round numbers to 14 digits. These
-- scanners split an object into its members' texts, kept byte for byte.

-- skip returns the index of the first non-space character at or after i.
local function skip(s, i)
  return s:find('[^ \t\r\n]', i) or (#s + 1)
end

-- stringEnd returns the index of the quote closing the string opening at i.
local function stringEnd(s, i)
  local j = i + 1
  while true do
    local p = s:find('["\\]', j)
    if not p then error('unterminated string in a stored entry') end
    if s:sub(p, p) == '"' then return p end
    j = p + 2
  end
end

-- valueEnd returns the index of the last character of the value at i.
local function valueEnd(s, i)
  local c = s:sub(i, i)
  if c == '"' then return stringEnd(s, i) end
  if c == '{' or c == '[' then
    local depth, j = 0, i
    while true do
      local p = s:find('["{}%[%]]', j)
      if not p then error('unterminated value in a stored entry') end
      local d = s:sub(p, p)
      if d == '"' then
        p = stringEnd(s, p)
      elseif d == '{' or d == '[' then
        depth = depth + 1
      else
        depth = depth - 1
        if depth == 0 then return p end
      end
      j = p + 1
    end
  end
  local p = s:find('[ \t\r\n,}%]]', i)
  return (p or (#s + 1)) - 1
end

-- members splits s, a JSON object, into the texts of its keys (quoted, as
-- written) and of their values. It returns nil when s is not an object.
local function members(s)
  local i = skip(s, 1)
  if s:sub(i, i) ~= '{' then return nil end
  local keys, vals = {}, {}
  i = skip(s, i + 1)
  if s:sub(i, i) == '}' then return keys, vals end
  while true do
    if s:sub(i, i) ~= '"' then error('bad key in a stored entry') end
    local e = stringEnd(s, i)
    keys[#keys + 1] = s:sub(i, e)
    i = skip(s, e + 1)
    if s:sub(i, i) ~= ':' then error('bad member in a stored entry') end
    i = skip(s, i + 1)
    e = valueEnd(s, i)
    vals[#vals + 1] = s:sub(i, e)
    i = skip(s, e + 1)
    local c = s:sub(i, i)
    if c == '}' then return keys, vals end
    if c ~= ',' then error('bad separator in a stored entry') end
    i = skip(s, i + 1)
  end
end

-- object joins members back into a JSON object's text.
local function object(keys, vals)
  local parts = {}
  for i = 1, #keys do
    parts[i] = keys[i] .. ':' .. vals[i]
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- Connection state recovery in a cluster (recovery_cluster.go) keeps each
-- socket's events in a stream whose ids are the offsets clients report,
-- and its suspended sessions in a sorted set scored by deadline. Times
-- come from Redis's clock, the one the stream ids are made from, so nodes
-- whose clocks differ agree on deadlines.

-- nowMs is Redis's time in milliseconds.
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- streamId splits a stream id "<ms>-<seq>" into its two numbers; nil when
-- s is not one (a client may send anything as its offset).
local function streamId(s)
  local ms, seq = string.match(s or '', '^(%d+)-(%d+)$')
  if not ms then return nil end
  return tonumber(ms), tonumber(seq)
end

-- idLess reports whether stream id a comes before b.
local function idLess(a, b)
  local am, as = streamId(a)
  local bm, bs = streamId(b)
  if am ~= bm then return am < bm end
  return as < bs
end
