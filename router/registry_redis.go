package router

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rtcio/rtcio-router/router/internal/sio"
	"github.com/rtcio/rtcio-router/rules"
)

// redisRegistry is the registry of one node of a cluster: the sockets,
// rooms, socket data and stores of every node live in Redis, so each
// node's rules see the cluster's state; only the node's own conns (the
// library's sockets, which cannot cross a process) stay local.
//
// Why Redis scripts and not the router's event lock: the lock serializes
// one node's events, not the cluster's. Each operation that reads and
// then writes (join's snapshot, leave, forget, a store field's write) is
// one Lua script, and Redis runs scripts one at a time, so each stays
// atomic across nodes without a lock held over round trips. A rule as a
// whole is no longer atomic across nodes, only each of its steps.
//
// Key layout, every key under the prefix "{P}:" (P the prefix given, its
// braces the Redis Cluster hash tag):
//
//	{P}:sock:<id>        hash  node (the node holding the socket), data (JSON object)
//	{P}:rooms:<id>       zset  the socket's rooms, scored in join order
//	{P}:room:<room>      zset  the room's members, scored in join order
//	{P}:seq              int   the join counter giving those scores (INCR)
//	{P}:stores           hash  store name → scope, the declarations (syncStores)
//	{P}:store:<name>     hash  entry key → value (JSON)
//	{P}:nodes            set   the nodes that registered (heartbeat)
//	{P}:node:<node>      str   the node's liveness: the time of its last heartbeat, expiring
//	{P}:nodesocks:<node> set   the node's sockets, for the cleanup after it dies
//	{P}:claim:<node>     str   who claimed the cleanup of a dead node, expiring
//
// and, with connection state recovery on (recovery_cluster.go):
//
//	{P}:sock:<id>        hash  also pid (the client's private id), trim (the
//	                           last event dropped over the cap); node is ""
//	                           while the session is suspended or being cleaned up
//	{P}:pid:<pid>        str   the socket id of a private id
//	{P}:inbox:<id>       stream the events sent to the socket; their ids are
//	                           the offsets its client reports
//	{P}:suspended        zset  suspended sessions, scored by deadline (ms)
//	{P}:deliver:<node>   channel the node's recipients of kept events
//
// Redis Cluster: all keys share one hash tag, so every script's keys,
// including those a script builds from the prefix (a room's, a store's),
// lie in one slot and no operation is cross-slot. The price is that one
// registry lives on one shard: a cluster of Redis nodes gives it failover,
// not more throughput; registries with different prefixes spread over
// shards. Scripts reach keys they were not given in KEYS (the rooms forget
// leaves, the stores it cleans); Redis 7 allows that for scripts without
// flags, and the shared slot keeps it correct.
//
// What stays local: socket returns this node's conn or nil, and count and
// each visit this node's conns. A local conn's rooms and data are changed
// only by its own node, so inRoom, roomsOf, socketData and shareRoom answer
// from the conn without a round trip when the socket is local.
//
// Redis errors: the registry's methods return no error. A failed call is
// logged (op, room, socket_id, store, err) and counted (failures), and the
// method returns its empty result: no members, not connected, no entry,
// added false. A write that failed is lost; one whose reply was lost (a
// timeout) may have been applied all the same, so the node's conns can
// differ from Redis until the socket disconnects. Every call is bounded by
// Timeout, which is how long a Redis outage can hold the event lock.
//
// Values in stores and socket data are stored as JSON and read back
// decoded: objects as map[string]any, arrays as []any, integers that fit
// as int, other numbers as float64. An integral float (2.0) is read back
// as the int 2, which expressions compare equal and clients receive as 2.
type redisRegistry struct {
	rdb     redis.UniversalClient
	node    string
	p       string // "{prefix}:"
	log     *slog.Logger
	timeout time.Duration
	ttl     time.Duration // of the node's liveness key
	every   time.Duration // heartbeat period

	// mu guards conns and decl. The router calls the registry under its
	// event lock, but the registry is also used from tests and (later) a
	// node-death watcher without it.
	mu    sync.RWMutex
	conns map[string]*conn
	// decl is the scope of each store of the node's rules set: reads and
	// writes of an undeclared store do nothing, as in memRegistry.
	decl map[string]rules.Scope

	errs    atomic.Uint64
	logGate everySecond // paces the failure log

	// stopBeat ends the heartbeat; beatDone is closed when it has ended.
	stopBeat context.CancelFunc
	beatDone chan struct{}
}

var _ registry = (*redisRegistry)(nil)

// redisRegistryOptions configure newRedisRegistry. An options struct, as
// the project's constructors take, because only the client and the node id
// are required: zero fields take the defaults given.
type redisRegistryOptions struct {
	// Client reaches Redis: a *redis.Client, a *redis.ClusterClient or a
	// failover client. Required.
	Client redis.UniversalClient
	// Node is this node's id, unique in the cluster and new for each run of
	// the process: a node that comes back under the id of a dead one takes
	// over its liveness key before anyone cleans up its sockets. Required.
	Node string
	// Prefix names the registry's keys; nodes sharing it share the state.
	// It must not contain '{' or '}'. Default "rtcio".
	Prefix string
	// Logger receives failures; nil discards them.
	Logger *slog.Logger
	// Timeout bounds each call to Redis. Default 2s.
	Timeout time.Duration
	// NodeTTL is how long a node counts as alive after its last heartbeat;
	// HeartbeatEvery is how often start's heartbeat runs. Defaults 15s, 5s.
	NodeTTL, HeartbeatEvery time.Duration
}

// redisScripts holds the Lua sources; lib.lua is prepended to each script.
//
//go:embed redisscripts/*.lua
var redisScripts embed.FS

// Scripts, loaded by SHA and sent in full only when the server lacks one.
var (
	scriptJoin       = loadScript("join")
	scriptLeave      = loadScript("leave")
	scriptForget     = loadScript("forget")
	scriptSetData    = loadScript("setdata")
	scriptStoreField = loadScript("storefield")
	scriptSyncStores = loadScript("syncstores")
	scriptHeartbeat  = loadScript("heartbeat")
	scriptDeadNodes  = loadScript("deadnodes")
	scriptClaim      = loadScript("claim")
	scriptRelease    = loadScript("release")
	scriptDepart     = loadScript("depart")
	scriptRestore    = loadScript("restore")
	scriptRelay      = loadScript("relay")
	// Connection state recovery in a cluster (recovery_cluster.go).
	scriptInbox       = loadScript("inbox")
	scriptSuspend     = loadScript("suspend")
	scriptSuspendNode = loadScript("suspendnode")
	scriptExpired     = loadScript("expired")
	scriptDrop        = loadScript("drop")
	scriptSession     = loadScript("session")
	scriptTakeover    = loadScript("takeover")
)

func loadScript(name string) *redis.Script {
	lib, err := redisScripts.ReadFile("redisscripts/lib.lua")
	if err != nil {
		panic(err) // embedded: cannot happen
	}
	src, err := redisScripts.ReadFile("redisscripts/" + name + ".lua")
	if err != nil {
		panic(err)
	}
	return redis.NewScript(string(lib) + "\n" + string(src))
}

// newRedisRegistry returns the registry of node opts.Node over Redis. It
// does not touch Redis; start begins the node's heartbeat.
func newRedisRegistry(opts redisRegistryOptions) (*redisRegistry, error) {
	if opts.Client == nil {
		return nil, errors.New("redis registry: no client")
	}
	if opts.Node == "" {
		return nil, errors.New("redis registry: no node id")
	}
	if opts.Prefix == "" {
		opts.Prefix = "rtcio"
	}
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, fmt.Errorf("redis registry: prefix %q: braces are the registry's hash tag", opts.Prefix)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.NodeTTL <= 0 {
		opts.NodeTTL = 15 * time.Second
	}
	if opts.HeartbeatEvery <= 0 {
		opts.HeartbeatEvery = 5 * time.Second
	}
	return &redisRegistry{
		rdb: opts.Client, node: opts.Node, p: "{" + opts.Prefix + "}:",
		log: opts.Logger, timeout: opts.Timeout, ttl: opts.NodeTTL, every: opts.HeartbeatEvery,
		conns: map[string]*conn{}, decl: map[string]rules.Scope{},
	}, nil
}

// Keys.

func (r *redisRegistry) sockKey(id string) string        { return r.p + "sock:" + id }
func (r *redisRegistry) roomsKey(id string) string       { return r.p + "rooms:" + id }
func (r *redisRegistry) roomKey(room string) string      { return r.p + "room:" + room }
func (r *redisRegistry) storeKey(store string) string    { return r.p + "store:" + store }
func (r *redisRegistry) nodeKey(node string) string      { return r.p + "node:" + node }
func (r *redisRegistry) nodeSocksKey(node string) string { return r.p + "nodesocks:" + node }
func (r *redisRegistry) claimKey(node string) string     { return r.p + "claim:" + node }
func (r *redisRegistry) seqKey() string                  { return r.p + "seq" }
func (r *redisRegistry) pidKey(pid string) string        { return r.p + "pid:" + pid }
func (r *redisRegistry) suspendedKey() string            { return r.p + "suspended" }
func (r *redisRegistry) deliverChannel(node string) string {
	return r.p + "deliver:" + node
}
func (r *redisRegistry) declKey() string  { return r.p + "stores" }
func (r *redisRegistry) nodesKey() string { return r.p + "nodes" }

// ctx is the context of one call to Redis: bounded by the timeout, since
// callers hold the router's event lock.
func (r *redisRegistry) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), r.timeout)
}

// failed counts a failed call and logs it, at most one line a second:
// with Redis down every event fails, and the log must stay readable (the
// cluster logs the outage itself). attrs name what it was about.
func (r *redisRegistry) failed(op string, err error, attrs ...any) {
	n := r.errs.Add(1)
	if !r.logGate.due() {
		return
	}
	r.log.Error("redis registry call failed", append([]any{"op", op, "node", r.node, "err", err, "failures_so_far", n}, attrs...)...)
}

// failures is the number of calls to Redis that failed.
func (r *redisRegistry) failures() uint64 { return r.errs.Load() }

// local returns this node's conn with id, or nil.
func (r *redisRegistry) local(id string) *conn {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.conns[id]
}

// Sockets.

// add registers c in Redis as a socket of this node, with its data.
func (r *redisRegistry) add(c *conn) {
	r.mu.Lock()
	r.conns[c.id] = c
	r.mu.Unlock()
	c.live = true
	data, err := encodeJSON(c.data)
	if err != nil {
		r.failed("add", err, "socket_id", c.id)
		data = "{}"
	}
	ctx, cancel := r.ctx()
	defer cancel()
	_, err = r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if c.pid != "" {
			// Connection state recovery: what another node needs to
			// recover the session if this one dies without a word.
			p.HSet(ctx, r.sockKey(c.id), "node", r.node, "data", data, "pid", c.pid)
			p.Set(ctx, r.pidKey(c.pid), c.id, 0)
		} else {
			p.HSet(ctx, r.sockKey(c.id), "node", r.node, "data", data)
		}
		p.SAdd(ctx, r.nodeSocksKey(r.node), c.id)
		return nil
	})
	if err != nil {
		r.failed("add", err, "socket_id", c.id)
	}
}

// leaving adds c to the cluster's set of sockets on their way out, which
// join.lua leaves out of a room's members (forget.lua takes it out again).
// A socket in no room is in nobody's member list: nothing to write.
func (r *redisRegistry) leaving(c *conn) {
	if len(c.rooms) == 0 {
		return
	}
	ctx, cancel := r.ctx()
	defer cancel()
	if err := r.rdb.SAdd(ctx, r.p+"leaving", c.id).Err(); err != nil {
		r.failed("leaving", err, "socket_id", c.id)
	}
}

// forget runs c's disconnect cleanup in one script (forget.lua). c may be
// a conn of another node (only its id is read): how a dead node's sockets
// are cleaned up by the node that claimed it.
func (r *redisRegistry) forget(c *conn) {
	r.mu.Lock()
	if r.conns[c.id] == c {
		delete(r.conns, c.id)
	}
	r.mu.Unlock()
	c.rooms = []string{}
	c.live = false
	ctx, cancel := r.ctx()
	defer cancel()
	// The script answers with the rooms it emptied; nothing here keeps a
	// copy of their entries to drop.
	if err := scriptForget.Run(ctx, r.rdb, []string{r.sockKey(c.id), r.roomsKey(c.id)}, r.p, c.id).Err(); err != nil {
		r.failed("forget", err, "socket_id", c.id)
	}
}

// restore writes this node's socket c back into Redis with its data and
// rooms (restore.lua), after Redis lost it: a restart without persistence,
// or writes that failed while it was unreachable. The join order within
// c's rooms is kept; stores are not (only Redis had them).
func (r *redisRegistry) restore(c *conn) error {
	data, err := encodeJSON(c.data)
	if err != nil {
		data = "{}"
	}
	args := append([]any{r.p, c.id, r.node, data, c.pid}, anySlice(c.rooms)...)
	ctx, cancel := r.ctx()
	defer cancel()
	keys := []string{r.sockKey(c.id), r.roomsKey(c.id), r.seqKey(), r.nodeSocksKey(r.node)}
	seqs, err := scriptRestore.Run(ctx, r.rdb, keys, args...).Int64Slice()
	if err != nil {
		r.failed("restore", err, "socket_id", c.id)
		return err
	}
	c.seqs = make(map[string]int64, len(c.rooms))
	for i, room := range c.rooms {
		if i < len(seqs) {
			c.seqs[room] = seqs[i]
		}
	}
	return nil
}

func anySlice(list []string) []any {
	out := make([]any, len(list))
	for i, s := range list {
		out[i] = s
	}
	return out
}

// socket returns this node's conn with id; a socket on another node is nil.
func (r *redisRegistry) socket(id string) *conn { return r.local(id) }

// connected reports whether id is connected to any node.
func (r *redisRegistry) connected(id string) bool {
	if r.local(id) != nil {
		return true
	}
	ctx, cancel := r.ctx()
	defer cancel()
	n, err := r.rdb.Exists(ctx, r.sockKey(id)).Result()
	if err != nil {
		r.failed("connected", err, "socket_id", id)
		return false
	}
	return n == 1
}

// count is the number of this node's sockets.
func (r *redisRegistry) count() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.conns)
}

// each visits this node's sockets. fn may forget the conn it is given: it
// runs over a copy of the list.
func (r *redisRegistry) each(fn func(*conn)) {
	r.mu.RLock()
	list := slices.Collect(maps.Values(r.conns))
	r.mu.RUnlock()
	for _, c := range list {
		fn(c)
	}
}

// Rooms.

// join adds c to room (join.lua) and returns the members before it. A
// socket another node has forgotten joins nothing.
func (r *redisRegistry) join(c *conn, room string) (before []string, added bool) {
	ctx, cancel := r.ctx()
	defer cancel()
	keys := []string{r.roomKey(room), r.roomsKey(c.id), r.seqKey(), r.sockKey(c.id)}
	res, err := scriptJoin.Run(ctx, r.rdb, keys, r.p, c.id, room).Slice()
	if err != nil {
		r.failed("join", err, "socket_id", c.id, "room", room)
		return []string{}, false
	}
	var seq int64
	if len(res) == 3 {
		seq, _ = res[2].(int64)
		res = res[:2]
	}
	status, before, err := statusList(res)
	if err != nil {
		r.failed("join", err, "socket_id", c.id, "room", room)
		return []string{}, false
	}
	switch status {
	case 1:
		// In place, as memRegistry does: readers of the old list never look
		// past its length.
		c.rooms = append(c.rooms, room)
		if c.seqs == nil {
			c.seqs = map[string]int64{}
		}
		c.seqs[room] = seq
		return before, true
	case -1:
		r.log.Warn("join refused: the socket is no longer registered", "node", r.node, "socket_id", c.id, "room", room)
	}
	return before, false
}

// leave takes c out of room (leave.lua) and returns the members left.
func (r *redisRegistry) leave(c *conn, room string) (remaining []string) {
	ctx, cancel := r.ctx()
	defer cancel()
	keys := []string{r.roomKey(room), r.roomsKey(c.id)}
	res, err := scriptLeave.Run(ctx, r.rdb, keys, r.p, c.id, room).Slice()
	if err != nil {
		r.failed("leave", err, "socket_id", c.id, "room", room)
		return []string{}
	}
	_, remaining, err = statusList(res)
	if err != nil {
		r.failed("leave", err, "socket_id", c.id, "room", room)
		return []string{}
	}
	if slices.Contains(c.rooms, room) {
		c.rooms = slices.DeleteFunc(slices.Clone(c.rooms), func(n string) bool { return n == room })
	}
	delete(c.seqs, room)
	return remaining
}

// members lists room's members, on every node, in join order.
func (r *redisRegistry) members(room string) []string {
	ctx, cancel := r.ctx()
	defer cancel()
	list, err := r.rdb.ZRange(ctx, r.roomKey(room), 0, -1).Result()
	if err != nil {
		r.failed("members", err, "room", room)
		return []string{}
	}
	return nonNil(list)
}

func (r *redisRegistry) roomSize(room string) int {
	ctx, cancel := r.ctx()
	defer cancel()
	n, err := r.rdb.ZCard(ctx, r.roomKey(room)).Result()
	if err != nil {
		r.failed("room_size", err, "room", room)
		return 0
	}
	return int(n)
}

func (r *redisRegistry) inRoom(room, id string) bool {
	if c := r.local(id); c != nil {
		return slices.Contains(c.rooms, room)
	}
	ctx, cancel := r.ctx()
	defer cancel()
	_, err := r.rdb.ZScore(ctx, r.roomKey(room), id).Result()
	if errors.Is(err, redis.Nil) {
		return false
	}
	if err != nil {
		r.failed("in_room", err, "room", room, "socket_id", id)
		return false
	}
	return true
}

func (r *redisRegistry) roomsOf(id string) []string {
	if c := r.local(id); c != nil {
		return ids(c.rooms)
	}
	ctx, cancel := r.ctx()
	defer cancel()
	list, err := r.rdb.ZRange(ctx, r.roomsKey(id), 0, -1).Result()
	if err != nil {
		r.failed("rooms_of", err, "socket_id", id)
		return []string{}
	}
	return nonNil(list)
}

// shareRoom answers from the conns when id is local (the relay's hot
// path), else intersects the two sockets' room sets in Redis.
func (r *redisRegistry) shareRoom(c *conn, id string) bool {
	if to := r.local(id); to != nil {
		for _, room := range c.rooms {
			if slices.Contains(to.rooms, room) {
				return true
			}
		}
		return false
	}
	return r.shareRoomByID(c.id, id)
}

// relayTo publishes payload on channel if the socket target exists and,
// with sharedOnly, shares a room with sender (relay.lua): the remote relay
// in one round trip. It returns 0 when published, 1 when target is not
// connected, 2 when they share no room.
func (r *redisRegistry) relayTo(ctx context.Context, sender, target string, sharedOnly bool, channel string, payload []byte) (int64, error) {
	shared := "0"
	if sharedOnly {
		shared = "1"
	}
	keys := []string{r.sockKey(target), r.roomsKey(sender), r.roomsKey(target)}
	status, err := scriptRelay.Run(ctx, r.rdb, keys, r.p, channel, payload, shared).Int64()
	if err != nil {
		r.failed("relay", err, "socket_id", sender, "target", target)
	}
	return status, err
}

// shareRoomByID intersects the two sockets' room sets in Redis, reading
// no conn: for callers that do not hold the router's event lock.
func (r *redisRegistry) shareRoomByID(a, b string) bool {
	ctx, cancel := r.ctx()
	defer cancel()
	n, err := r.rdb.ZInterCard(ctx, 1, r.roomsKey(a), r.roomsKey(b)).Result() // limit 1: one shared room is enough
	if err != nil {
		r.failed("share_room", err, "socket_id", a, "target", b)
		return false
	}
	return n > 0
}

// Socket data.

func (r *redisRegistry) socketData(id string) map[string]any {
	if c := r.local(id); c != nil {
		return c.data
	}
	ctx, cancel := r.ctx()
	defer cancel()
	s, err := r.rdb.HGet(ctx, r.sockKey(id), "data").Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		r.failed("socket_data", err, "socket_id", id)
		return nil
	}
	v, err := decodeJSON(s)
	m, ok := v.(map[string]any)
	if err != nil || !ok {
		r.failed("socket_data", fmt.Errorf("stored data: %q: %v", s, err), "socket_id", id)
		return nil
	}
	return m
}

// setData changes c's data and writes all of it to Redis: only c's node
// writes it, so no field of another writer can be lost.
func (r *redisRegistry) setData(c *conn, keys []string, values []any) {
	c.setData(keys, values)
	data, err := encodeJSON(c.data)
	if err != nil {
		r.failed("set_data", err, "socket_id", c.id)
		return
	}
	ctx, cancel := r.ctx()
	defer cancel()
	if err := scriptSetData.Run(ctx, r.rdb, []string{r.sockKey(c.id)}, r.p, data).Err(); err != nil {
		r.failed("set_data", err, "socket_id", c.id)
	}
}

// Stores.

// syncStores makes the cluster's stores those of set (syncstores.lua):
// the declarations are shared, so a rules set that drops or rescopes a
// store empties it for every node. Every node must run the same stores.
func (r *redisRegistry) syncStores(set *rules.Set) {
	decl := make(map[string]rules.Scope, len(set.Stores))
	args := []any{r.p}
	for _, s := range set.Stores {
		decl[s.Name] = s.Scope
		args = append(args, s.Name, scopeName(s.Scope))
	}
	r.mu.Lock()
	r.decl = decl
	r.mu.Unlock()
	ctx, cancel := r.ctx()
	defer cancel()
	if err := scriptSyncStores.Run(ctx, r.rdb, []string{r.declKey()}, args...).Err(); err != nil {
		r.failed("sync_stores", err)
	}
}

// scopeName is how a scope is written in the declarations hash, which the
// scripts read.
func scopeName(s rules.Scope) string {
	switch s {
	case rules.ScopeSocket:
		return "socket"
	case rules.ScopeRoom:
		return "room"
	default:
		return "global"
	}
}

// declared reports whether the node's rules declare store.
func (r *redisRegistry) declared(store string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.decl[store]
	return ok
}

// decodeEntries decodes a store's hash; an entry that does not decode is
// counted and left out.
func (r *redisRegistry) decodeEntries(store string, raw map[string]string) map[string]any {
	out := make(map[string]any, len(raw))
	for k, s := range raw {
		v, err := decodeJSON(s)
		if err != nil {
			r.failed("decode", err, "store", store, "key", k)
			continue
		}
		out[k] = v
	}
	return out
}

func (r *redisRegistry) storeGet(store, key string) (any, bool) {
	if !r.declared(store) {
		return nil, false
	}
	ctx, cancel := r.ctx()
	defer cancel()
	s, err := r.rdb.HGet(ctx, r.storeKey(store), key).Result()
	if errors.Is(err, redis.Nil) {
		return nil, false
	}
	if err != nil {
		r.failed("store_get", err, "store", store, "key", key)
		return nil, false
	}
	v, err := decodeJSON(s)
	if err != nil {
		r.failed("store_get", err, "store", store, "key", key)
		return nil, false
	}
	return v, true
}

func (r *redisRegistry) storeSet(store, key string, v any) {
	if v == nil {
		r.storeDelete(store, key)
		return
	}
	if !r.declared(store) {
		return
	}
	s, err := encodeJSON(v)
	if err != nil {
		r.failed("store_set", err, "store", store, "key", key)
		return
	}
	ctx, cancel := r.ctx()
	defer cancel()
	if err := r.rdb.HSet(ctx, r.storeKey(store), key, s).Err(); err != nil {
		r.failed("store_set", err, "store", store, "key", key)
	}
}

func (r *redisRegistry) storeSetField(store, key, field string, v any) {
	value := ""
	if v != nil {
		var err error
		if value, err = encodeJSON(v); err != nil {
			r.failed("store_set_field", err, "store", store, "key", key, "field", field)
			return
		}
	}
	r.storeField("store_set_field", "set", store, key, field, value)
}

func (r *redisRegistry) storeDeleteField(store, key, field string) {
	r.storeField("store_delete_field", "del", store, key, field, "")
}

// storeField runs storefield.lua.
func (r *redisRegistry) storeField(op, mode, store, key, field, value string) {
	if !r.declared(store) {
		return
	}
	ctx, cancel := r.ctx()
	defer cancel()
	name, _ := sio.AppendJSON(nil, field)
	// The script answers with the entry as it now is; nothing here keeps
	// a copy to update.
	err := scriptStoreField.Run(ctx, r.rdb, []string{r.storeKey(store)}, r.p, key, string(name), value, mode).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		r.failed(op, err, "store", store, "key", key, "field", field)
	}
}

func (r *redisRegistry) storeDelete(store, key string) {
	if !r.declared(store) {
		return
	}
	ctx, cancel := r.ctx()
	defer cancel()
	if err := r.rdb.HDel(ctx, r.storeKey(store), key).Err(); err != nil {
		r.failed("store_delete", err, "store", store, "key", key)
	}
}

func (r *redisRegistry) storeEntries(store string) map[string]any {
	if !r.declared(store) {
		return nil
	}
	ctx, cancel := r.ctx()
	defer cancel()
	raw, err := r.rdb.HGetAll(ctx, r.storeKey(store)).Result()
	if err != nil {
		r.failed("store_entries", err, "store", store)
		return map[string]any{}
	}
	return r.decodeEntries(store, raw)
}

// Liveness: each node refreshes a key that expires; a node whose key has
// expired is dead, and one other node claims it and cleans up its sockets.

// start registers the node and refreshes its liveness every
// HeartbeatEvery until stop; one goroutine calls start and stop. The first heartbeat runs before start
// returns, and its error is returned: a node Redis does not know as alive
// must not take sockets. Later failures are logged and counted.
func (r *redisRegistry) start() error {
	if r.stopBeat != nil {
		return errors.New("redis registry: started twice")
	}
	if err := r.heartbeat(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stopBeat, r.beatDone = cancel, make(chan struct{})
	go r.beat(ctx)
	return nil
}

// stop ends the heartbeat and returns when it has ended. The liveness key
// is left to expire (a node stopped with sockets still registered is found
// dead and cleaned up by another) unless depart is called then.
func (r *redisRegistry) stop() {
	if r.stopBeat == nil {
		return
	}
	r.stopBeat()
	<-r.beatDone
	r.stopBeat = nil
}

func (r *redisRegistry) beat(ctx context.Context) {
	defer close(r.beatDone)
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.heartbeat(); err != nil {
				r.failed("heartbeat", err)
			}
		}
	}
}

// heartbeat refreshes the node's liveness key (heartbeat.lua).
func (r *redisRegistry) heartbeat() error {
	ctx, cancel := r.ctx()
	defer cancel()
	keys := []string{r.nodeKey(r.node), r.nodesKey(), r.claimKey(r.node)}
	claimed, err := scriptHeartbeat.Run(ctx, r.rdb, keys, r.p, r.node, r.ttl.Milliseconds(), time.Now().UnixMilli()).Int()
	if err != nil {
		return fmt.Errorf("redis registry: heartbeat of node %q: %w", r.node, err)
	}
	if claimed == 1 {
		// Its heartbeats stopped for longer than the ttl (a pause, a
		// partition): another node is cleaning up its sockets.
		r.log.Error("node was taken for dead and claimed by another node", "node", r.node)
	}
	return nil
}

// deadNodes lists the nodes whose liveness expired and that nobody is
// cleaning up now (deadnodes.lua).
func (r *redisRegistry) deadNodes(ctx context.Context) ([]string, error) {
	list, err := scriptDeadNodes.Run(ctx, r.rdb, []string{r.nodesKey()}, r.p, r.node).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redis registry: dead nodes: %w", err)
	}
	return nonNil(list), nil
}

// claimNode claims the cleanup of the dead node (claim.lua) for claimTTL
// and returns the sockets it held; ok is false if it is alive, cleaned up
// already or claimed by another. The claimer then runs each socket's
// disconnect cleanup (forget with a conn of that id) and calls
// releaseNode; a claimer that dies first lets the claim expire.
func (r *redisRegistry) claimNode(ctx context.Context, dead string, claimTTL time.Duration) (sockets []string, ok bool, err error) {
	keys := []string{r.nodesKey(), r.nodeKey(dead), r.claimKey(dead), r.nodeSocksKey(dead)}
	res, err := scriptClaim.Run(ctx, r.rdb, keys, r.p, dead, r.node, claimTTL.Milliseconds()).Slice()
	if err != nil {
		return nil, false, fmt.Errorf("redis registry: claim node %q: %w", dead, err)
	}
	status, sockets, err := statusList(res)
	if err != nil {
		return nil, false, fmt.Errorf("redis registry: claim node %q: %w", dead, err)
	}
	slices.Sort(sockets)
	return sockets, status == 1, nil
}

// depart tells the other nodes that this one stops cleanly (depart.lua),
// after stop: a node whose liveness key merely expired would be claimed
// as dead and its (by then no) sockets dealt with, logged as a warning
// after every clean restart. left is how many of its sockets are still
// registered; they are then left to the others' claim, at once.
func (r *redisRegistry) depart() (left int, err error) {
	ctx, cancel := r.ctx()
	defer cancel()
	keys := []string{r.nodesKey(), r.nodeKey(r.node), r.nodeSocksKey(r.node)}
	n, err := scriptDepart.Run(ctx, r.rdb, keys, r.p, r.node).Int()
	if err != nil {
		return 0, fmt.Errorf("redis registry: depart of node %q: %w", r.node, err)
	}
	return n, nil
}

// releaseNode ends the cleanup of a node this one claimed (release.lua):
// the node is forgotten if none of its sockets is left, and left is how
// many are (its claim then expires and it is claimed again).
func (r *redisRegistry) releaseNode(ctx context.Context, dead string) (left int, err error) {
	keys := []string{r.nodesKey(), r.claimKey(dead), r.nodeSocksKey(dead)}
	n, err := scriptRelease.Run(ctx, r.rdb, keys, r.p, dead, r.node).Int()
	if err != nil {
		return 0, fmt.Errorf("redis registry: release node %q: %w", dead, err)
	}
	if n < 0 {
		return 0, fmt.Errorf("redis registry: release node %q: the claim is not this node's", dead)
	}
	return n, nil
}

// Encoding.

// encodeJSON writes v as the registry stores it: the JSON the router
// sends, with an object's keys sorted and escaped as encoding/json does,
// so storefield.lua finds a field by comparing its key's text. A client's
// raw argument at the top is written from its decoded value, for the same
// reason.
func encodeJSON(v any) (string, error) {
	if raw, ok := v.(*sio.RawJSON); ok {
		v = raw.Value
	}
	b, ok := sio.AppendJSON(nil, v)
	if !ok {
		return "", fmt.Errorf("value of type %T does not encode as JSON", v)
	}
	return string(b), nil
}

// decodeJSON reads a stored value: integers that fit an int as int, like
// the values rules compute, other numbers as float64.
func decodeJSON(s string) (any, error) {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("stored value: %w", err)
	}
	return numbers(v), nil
}

// numbers replaces the json.Numbers of a freshly decoded value.
func numbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(v), 10, 0); err == nil {
			return int(i)
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		for k, item := range v {
			v[k] = numbers(item)
		}
	case []any:
		for i, item := range v {
			v[i] = numbers(item)
		}
	}
	return v
}

// statusList reads a script's {status, list} reply.
func statusList(res []any) (int, []string, error) {
	if len(res) != 2 {
		return 0, nil, fmt.Errorf("script reply %v: want {status, list}", res)
	}
	status, ok := res[0].(int64)
	items, ok2 := res[1].([]any)
	if !ok || !ok2 {
		return 0, nil, fmt.Errorf("script reply %v: want {status, list}", res)
	}
	list := make([]string, len(items))
	for i, item := range items {
		if list[i], ok = item.(string); !ok {
			return 0, nil, fmt.Errorf("script reply %v: want strings", res)
		}
	}
	return int(status), list, nil
}

// nonNil is list, or [] for nil: clients must get [] and not null.
func nonNil(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}
