package router

// Cluster mode (cluster.redis, --redis, REDIS_URL): nodes sharing a Redis act
// as one server.
//
//   - State: the registry is redisRegistry (registry_redis.go): sockets,
//     rooms in join order, socket data and stores live in Redis, each
//     operation one atomic script, so a join's snapshot is exact across
//     nodes. Rules still run under the node's event lock; across nodes each
//     registry operation is atomic on its own (the guarantees in
//     registry.go).
//   - Deliveries: clusterWire sends to this node's sockets directly and
//     publishes every room emit, and every send to a socket of another
//     node, on Redis pub/sub in @socket.io/redis-adapter's format
//     (router/internal/redisbus); each node delivers what it receives to
//     its own sockets. A relay between two sockets of one node never
//     touches Redis on its way.
//   - Liveness: each node refreshes a key in Redis; one that stops (killed,
//     partitioned) is found dead by the others, and exactly one of them
//     claims it and runs the disconnect cleanup of each of its sockets
//     (peer-left, the disconnecting rules, state dropped), as that node
//     would have.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rtcio/rtcio-router/router/internal/redisbus"
	"github.com/rtcio/rtcio-router/router/internal/sio"
	"github.com/rtcio/rtcio-router/rules"
)

// Broadcast tags: how a receiving node reads the rooms of a broadcast
// another rtcio-router node published. Without a tag (a socket.io node, the
// emitter) a name may be a room or a socket id, as in socket.io.
const (
	tagRooms   = "rtcio/rooms"   // application rooms only
	tagSockets = "rtcio/sockets" // socket ids only
	// joinedBefore follows tagRooms with a join order number N: only
	// members that joined before N receive it (state.joinedAt).
	joinedBefore = ";before="
)

// Cluster timings.
const (
	// nodeTTL is how long a node counts as alive after its last heartbeat;
	// heartbeatEvery how often it refreshes. A killed node's peers hear of
	// it within nodeTTL plus one watch period.
	nodeTTL        = 10 * time.Second
	heartbeatEvery = 2 * time.Second
	// watchEvery is how often a node looks for dead ones and checks Redis.
	watchEvery = 2 * time.Second
	// claimTTL bounds one node's cleanup of a dead one; a claimer that dies
	// meanwhile lets another take over.
	claimTTL = 30 * time.Second
)

// cluster is a node's membership of a cluster.
type cluster struct {
	r    *Router
	node string
	rdb  redis.UniversalClient
	reg  *redisRegistry
	bus  *redisbus.Bus
	log  *slog.Logger

	// up is whether Redis answered the last check.
	up atomic.Bool
	// nodes is how many nodes were alive at the last check, this one
	// included (rtcio_cluster_nodes); 1 until the first check.
	nodes atomic.Int64
	// gate fails calls at once while Redis is down (downGate).
	gate *downGate
	// inbox keeps the events of sessions, with recovery on
	// (recovery_cluster.go); nil without.
	inbox *inbox
	// deafToTakeovers makes onDeliver ignore takeover notices; set by
	// tests only (IgnoreTakeoverNoticesForTest).
	deafToTakeovers atomic.Bool
	// suspended is how many sessions the cluster held suspended at the
	// last check, with recovery on (/health, rtcio_sockets_suspended).
	suspended atomic.Int64
	// runID is the run_id Redis reported last (watch's goroutine only): a
	// new one means a restart, which lost what Redis held.
	runID string

	stopOnce sync.Once
	stop     context.CancelFunc
	done     chan struct{}
}

// redisURL is the cluster's Redis: Options.Redis (--redis, REDIS_URL) over
// the file's cluster.redis; "" is no cluster.
func (o Options) redisURL(set *rules.Set) string {
	if o.Redis != "" {
		return o.Redis
	}
	return set.Cluster.Redis
}

// joinCluster connects this node to the cluster at url: the registry
// replaces the in-memory one, and the bus and the watcher start. It fails
// when Redis cannot be reached: a node that starts without its state would
// serve clients it cannot see.
func (r *Router) joinCluster(url string, set *rules.Set) error {
	if err := rules.CheckRedisURL(url); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	// Every call runs under the event lock: fail fast rather than retry
	// and hold every socket of the node waiting.
	opt.MaxRetries = 1
	opt.DialTimeout = time.Second
	opt.ReadTimeout = time.Second
	opt.WriteTimeout = time.Second
	opt.PoolTimeout = time.Second
	rdb := redis.NewClient(opt)
	gate := &downGate{}
	rdb.AddHook(gate)
	r.m.instrumentCluster(rdb) // timed inside the gate: a gated call makes no round trip
	node := newNodeID()
	log := r.log.With("node", node)
	quietRedisOnce.Do(func() { redis.SetLogger(redisLogger{r.log}) })
	reg, err := newRedisRegistry(redisRegistryOptions{
		Client: rdb, Node: node, Prefix: set.Cluster.Prefix, Logger: log,
		Timeout: time.Second, NodeTTL: nodeTTL, HeartbeatEvery: heartbeatEvery,
	})
	if err != nil {
		_ = rdb.Close()
		return err
	}
	cl := &cluster{r: r, node: node, rdb: rdb, reg: reg, log: log, done: make(chan struct{}), gate: gate}
	prefix := "socket.io" // @socket.io/redis-adapter's and the emitter's default
	if set.Cluster.Prefix != rules.DefaultClusterPrefix {
		prefix = set.Cluster.Prefix
	}
	bopts := redisbus.Options{
		Prefix: prefix, UID: node, Logger: log,
		OnBroadcast: cl.received, OnRequest: cl.requested, OnFetch: cl.r.fetchSockets,
	}
	if set.Server.Recovery > 0 {
		// Sessions live in Redis (recovery_cluster.go).
		cl.inbox = &inbox{reg: reg, cap: set.Server.RecoveryMaxEvents, window: set.Server.Recovery}
		bopts.Direct, bopts.OnDirect = reg.deliverChannel(node), cl.onDeliver
	}
	cl.bus, err = redisbus.New(rdb, bopts)
	if err != nil {
		_ = rdb.Close()
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := reg.start(); err != nil {
		_ = rdb.Close()
		return fmt.Errorf("redis %s: %w", redactURL(url), err)
	}
	if err := cl.bus.Start(ctx); err != nil {
		reg.stop()
		_ = rdb.Close()
		return fmt.Errorf("redis %s: %w", redactURL(url), err)
	}
	cl.up.Store(true)
	cl.nodes.Store(1)
	if info, err := rdb.Info(ctx, "server").Result(); err == nil {
		cl.runID = runID(info)
	}
	r.st.registry = reg
	r.cl = cl
	watch, stop := context.WithCancel(context.Background())
	cl.stop = stop
	go cl.watch(watch)
	log.Info("joined the cluster", "redis", redactURL(url), "prefix", set.Cluster.Prefix)
	return nil
}

// quietRedisOnce routes go-redis's own log lines (one per failed dial,
// printed on stderr by default) into the router's log, once per process:
// the setting is global to go-redis.
var quietRedisOnce sync.Once

// redisLogger is go-redis's logger over slog, at debug level: the cluster
// logs Redis failures itself, once per state change.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug("redis client", "msg", fmt.Sprintf(format, v...))
}

// newNodeID names this run of the process: new every start, so a node
// that comes back never takes over the liveness of its dead self before
// the others have cleaned up after it.
func newNodeID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// redactURL drops a password from a Redis URL for logs.
func redactURL(u string) string {
	opt, err := redis.ParseURL(u)
	if err != nil || opt.Password == "" {
		return u
	}
	return opt.Network + "://" + opt.Addr
}

// leave stops the watcher and the bus, tells the others this node is
// gone (its sockets are cleaned up or suspended by then: Close does it
// first) and closes the connection. Without that word the others would
// take the node for dead once its liveness key expired, and log it.
func (cl *cluster) leave() {
	cl.stopOnce.Do(func() {
		cl.stop()
		<-cl.done
		_ = cl.bus.Close()
		cl.reg.stop()
		if left, err := cl.reg.depart(); err != nil {
			cl.log.Warn("leaving the cluster failed; the other nodes will take this one for dead", "err", err)
		} else if left > 0 {
			cl.log.Warn("left the cluster with sockets still registered; another node takes them over", "sockets", left)
		} else {
			cl.log.Info("left the cluster")
		}
		_ = cl.rdb.Close()
	})
}

// watch checks Redis and looks for dead nodes every watchEvery.
func (cl *cluster) watch(ctx context.Context) {
	defer close(cl.done)
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cl.check(ctx)
	}
}

// check asks Redis who it is (INFO server's run_id): unreachable, /health
// says so; back after being unreachable, or a new run (restarted, empty),
// this node writes its sockets back (rebuild); then it looks for dead
// nodes.
func (cl *cluster) check(ctx context.Context) {
	infoCtx, cancel := context.WithTimeout(context.WithValue(ctx, probeKey{}, true), time.Second)
	info, err := cl.rdb.Info(infoCtx, "server").Result()
	cancel()
	up := err == nil
	cl.gate.down.Store(!up)
	if was := cl.up.Swap(up); was != up {
		if !up {
			cl.log.Error("redis unreachable; /health answers 503 until it is back", "err", err)
		} else {
			cl.log.Info("redis reachable again")
		}
		if up {
			cl.rebuild("redis was unreachable")
		}
	}
	if !up {
		return
	}
	if run := runID(info); run != "" {
		if cl.runID != "" && run != cl.runID {
			cl.rebuild("redis restarted")
		}
		cl.runID = run
	}
	cl.reapDeadNodes(ctx)
	if cl.inbox != nil {
		cl.reapExpired(ctx)
	}
}

// downGate fails every call to Redis at once while the watcher has found
// it unreachable, but for the watcher's own probe (probeKey). Why: calls
// run under the event lock, and each would otherwise wait for its timeout
// (a Redis that drops packets answers nothing), stalling every socket of
// the node; failing fast keeps the node serving what needs no Redis
// (relays between its own sockets, local deliveries) until Redis is back.
type downGate struct{ down atomic.Bool }

// probeKey marks a context whose calls pass the gate.
type probeKey struct{}

// errRedisDown is what gated calls fail with.
var errRedisDown = errors.New("redis is unreachable (calls fail at once until the next check succeeds)")

func (g *downGate) DialHook(next redis.DialHook) redis.DialHook { return next }

func (g *downGate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if g.down.Load() && ctx.Value(probeKey{}) == nil {
			cmd.SetErr(errRedisDown)
			return errRedisDown
		}
		return next(ctx, cmd)
	}
}

func (g *downGate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if g.down.Load() && ctx.Value(probeKey{}) == nil {
			for _, cmd := range cmds {
				cmd.SetErr(errRedisDown)
			}
			return errRedisDown
		}
		return next(ctx, cmds)
	}
}

// runID reads run_id from INFO server's text.
func runID(info string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			return v
		}
	}
	return ""
}

// rebuild writes this node's part of the cluster back into Redis: the
// stores' declarations and each local socket with its data and rooms in
// join order. What only Redis held (the stores' entries, the sockets of
// nodes that do not rebuild) is lost; see the README.
func (cl *cluster) rebuild(why string) {
	st := cl.r.st
	st.mu.Lock()
	defer st.mu.Unlock()
	st.syncStores(cl.r.Rules())
	n, failed := 0, 0
	st.each(func(c *conn) {
		if cl.reg.restore(c) != nil {
			failed++
			return
		}
		n++
	})
	cl.log.Warn("wrote this node's sockets back into redis", "why", why, "sockets", n, "failed", failed)
	if cl.inbox != nil {
		cl.suspendOrphans() // recovery_cluster.go
	}
}

// reapDeadNodes cleans up after every dead node this node can claim.
func (cl *cluster) reapDeadNodes(ctx context.Context) {
	dead, err := cl.reg.deadNodes(ctx)
	if err != nil {
		cl.log.Warn("looking for dead nodes failed", "err", err)
		return
	}
	if n, err := cl.rdb.SCard(ctx, cl.reg.nodesKey()).Result(); err == nil {
		cl.nodes.Store(n - int64(len(dead))) // rtcio_cluster_nodes
	}
	for _, node := range dead {
		sockets, ok, err := cl.reg.claimNode(ctx, node, claimTTL)
		if err != nil || !ok {
			continue
		}
		if cl.inbox != nil {
			// With recovery on, its clients may recover their sessions
			// on any node: they are suspended rather than cleaned up.
			n, err := cl.reg.suspendNode(ctx, node, cl.inbox.window)
			if err != nil {
				cl.log.Warn("suspending a dead node's sockets failed", "dead_node", node, "err", err)
			} else {
				cl.log.Warn("node found dead; its sessions are suspended for recovery", "dead_node", node, "sockets", n)
			}
		} else {
			cl.log.Warn("node found dead; cleaning up its sockets", "dead_node", node, "sockets", len(sockets))
			for _, id := range sockets {
				cl.r.cleanupRemote(id, "transport close")
			}
		}
		if _, err := cl.reg.releaseNode(ctx, node); err != nil {
			cl.log.Warn("releasing a dead node failed", "dead_node", node, "err", err)
		}
	}
}

// cleanupRemote runs the disconnect cleanup of socket id, which another
// node held: #rtcio:peer-left to its rooms, the disconnecting rules, its
// state dropped, as that node would have done.
func (r *Router) cleanupRemote(id, reason string) {
	c := &conn{id: id, live: true}
	defer r.recoverEvent(c)
	r.st.mu.Lock()
	defer r.st.mu.Unlock()
	if old := r.st.socket(id); old != nil {
		if !r.shared() {
			return // ours after all (cannot happen: node ids are unique)
		}
		// With recovery on, a conn this node never noticed was taken over
		// (its client recovered elsewhere, then that session expired):
		// stale, and the session being cleaned up is not its.
		r.cl.reg.dropLocal(old)
	}
	c.data = r.st.socketData(id)
	if c.data == nil {
		c.data = map[string]any{}
	}
	c.rooms = r.st.roomsOf(id)
	r.cleanupLocked(c, reason)
}

// received delivers a broadcast published by another node or an emitter
// to this node's sockets.
func (cl *cluster) received(b redisbus.Broadcast) {
	cl.r.m.busMessage(true)
	// Sockets are sent JSON only: a Node server or an emitter's Buffer
	// would reach them as a base64 string, so such a broadcast is dropped
	// (the sender's own clients still get it from the sender). Our own
	// nodes (tagged) never publish binary.
	if b.Tag == "" && slices.ContainsFunc(b.Args, holdsBinary) {
		cl.log.Warn("broadcast with binary arguments dropped: the router sends JSON only", "event", b.Event, "from", b.From)
		return
	}
	var to sio.Audience
	if rest, ok := strings.CutPrefix(b.Tag, tagRooms+joinedBefore); ok {
		before, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			cl.log.Debug("broadcast with a bad tag dropped", "tag", b.Tag)
			return
		}
		to = sio.Audience{Sockets: cl.r.joinedBefore(b.Rooms, b.Except, before)}
		if len(to.Sockets) == 0 {
			return
		}
		b.Tag = ""
		if err := cl.r.tr.Send(to, b.Event, b.Args...); err != nil {
			cl.log.Debug("delivery from the cluster failed", "event", b.Event, "err", err)
		}
		return
	}
	switch b.Tag {
	case tagRooms:
		to = sio.Audience{Rooms: b.Rooms, ExceptSockets: b.Except}
	case tagSockets:
		to = sio.Audience{Sockets: b.Rooms, ExceptSockets: b.Except}
	default: // socket.io's meaning: a name is a room or a socket id
		if cl.inbox != nil {
			cl.keepForeign(b) // recovery_cluster.go
			return
		}
		// Only names of this node's sockets go to the transport as socket
		// ids: there any other name could match one of its own rooms (an
		// application room under its internal name).
		to = sio.Audience{Rooms: b.Rooms, Sockets: cl.r.ownSockets(b.Rooms), ExceptRooms: b.Except,
			ExceptSockets: cl.r.ownSockets(b.Except), Everyone: len(b.Rooms) == 0}
	}
	if err := cl.r.tr.Send(to, b.Event, b.Args...); err != nil {
		cl.log.Debug("delivery from the cluster failed", "event", b.Event, "err", err)
	}
}

// ownSockets returns the names that are ids of this node's sockets.
func (r *Router) ownSockets(names []string) []string {
	var ids []string
	r.st.mu.RLock()
	defer r.st.mu.RUnlock()
	for _, n := range names {
		if r.st.socket(n) != nil {
			ids = append(ids, n)
		}
	}
	return ids
}

// holdsBinary reports whether a received value is or holds a msgpack bin
// (a Node Buffer).
func holdsBinary(v any) bool {
	switch v := v.(type) {
	case []byte:
		return true
	case []any:
		return slices.ContainsFunc(v, holdsBinary)
	case map[string]any:
		for _, x := range v {
			if holdsBinary(x) {
				return true
			}
		}
	}
	return false
}

// joinedBefore lists this node's sockets that are in one of rooms and
// joined it before the join order number before, but for except.
func (r *Router) joinedBefore(rooms, except []string, before int64) []string {
	var ids []string
	r.st.mu.RLock()
	defer r.st.mu.RUnlock()
	r.st.each(func(c *conn) {
		if slices.Contains(except, c.id) {
			return
		}
		for _, room := range rooms {
			if seq, ok := c.seqs[room]; ok && seq < before {
				ids = append(ids, c.id)
				return
			}
		}
	})
	return ids
}

// requested answers the emitter's requests. Room membership belongs to
// the rules (it is the registry's, in join order, with its stores), so
// socketsJoin and socketsLeave are refused; disconnectSockets is carried
// out; serverSideEmit has no listener here.
func (cl *cluster) requested(q redisbus.Request) {
	switch q.Kind {
	case redisbus.RequestDisconnect:
		cl.r.disconnectWhere(q.Rooms, q.Except)
	default:
		cl.log.Debug("cluster request ignored", "kind", q.Kind.String(), "from", q.From)
	}
}

// fetchSockets describes, for a Node server's fetchSockets, this node's
// sockets selected as disconnectWhere selects them: id, rooms (its id
// first, as socket.io lists them), socket data, and the handshake's query.
// The handshake's auth is sent empty: it usually carries the client's
// token, which no other server on the Redis needs to see.
func (r *Router) fetchSockets(rooms, except []string) []redisbus.Socket {
	var out []redisbus.Socket
	r.st.mu.RLock()
	defer r.st.mu.RUnlock()
	r.st.each(func(c *conn) {
		if matches(c, except) || len(rooms) > 0 && !matches(c, rooms) {
			return
		}
		hs := map[string]any{"query": orEmpty(c.query), "auth": map[string]any{}}
		out = append(out, redisbus.Socket{ID: c.id, Rooms: append([]string{c.id}, c.rooms...), Data: c.data, Handshake: hs})
	})
	return out
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// disconnectWhere hangs up this node's sockets that are in one of rooms
// (or are named there), all of them when rooms is empty, except those in
// or named in except.
func (r *Router) disconnectWhere(rooms, except []string) {
	var out []*conn
	r.st.mu.RLock()
	r.st.each(func(c *conn) {
		if matches(c, except) {
			return
		}
		if len(rooms) == 0 || matches(c, rooms) {
			out = append(out, c)
		}
	})
	r.st.mu.RUnlock()
	for _, c := range out {
		r.st.wire.hangUp(c)
	}
}

// matches reports whether c is named in names or is in one of those rooms.
func matches(c *conn, names []string) bool {
	for _, n := range names {
		if n == c.id {
			return true
		}
		for _, room := range c.rooms {
			if room == n {
				return true
			}
		}
	}
	return false
}

// clusterWire delivers to this node's sockets itself and publishes for
// the others.
type clusterWire struct {
	local socketWire
	// inbox, with recovery on, keeps every event for its recipients'
	// replay (recovery_cluster.go); r delivers them then.
	inbox *inbox
	r     *Router
	bus   *redisbus.Bus
	log   *slog.Logger
	st    *state // for joinedAt; read under st.mu, which every send holds
	m     *metrics
	// failures paces the warning of failed publishes.
	failures *everySecond
}

var _ wire = clusterWire{}

// everySecond lets a repeated log line through at most once a second:
// with Redis down every emit fails, and the log must stay readable.
type everySecond struct{ last atomic.Int64 }

// due reports whether the line may be logged now.
func (e *everySecond) due() bool {
	now := time.Now().UnixNano()
	last := e.last.Load()
	return now-last >= int64(time.Second) && e.last.CompareAndSwap(last, now)
}

// publishTimeout bounds one publish; it runs under the event lock.
const publishTimeout = time.Second

func (w clusterWire) publish(b redisbus.Broadcast) error {
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	err := w.bus.Publish(ctx, b)
	if err == nil {
		w.m.busMessage(false)
	}
	if err != nil && !errors.Is(err, redisbus.ErrClosed) && w.failures.due() {
		w.log.Warn("publish to the cluster failed", "event", b.Event, "err", err)
	}
	return err
}

func (w clusterWire) send(rooms []string, except string, event string, args []any) error {
	if w.inbox != nil {
		return w.sendKept(rooms, except, event, args)
	}
	err := w.local.send(rooms, except, event, args)
	b := redisbus.Broadcast{Rooms: rooms, Event: event, Args: args, Tag: tagRooms}
	if w.st.joinedAt > 0 {
		b.Tag = tagRooms + joinedBefore + strconv.FormatInt(w.st.joinedAt, 10)
	}
	if except != "" {
		b.Except = []string{except}
	}
	return errors.Join(err, w.publish(b))
}

// sendTo delivers to a socket of this node directly, and publishes for a
// socket of another (a conn with no socket.io socket).
func (w clusterWire) sendTo(c *conn, event string, args []any) error {
	if w.inbox != nil {
		return w.sendToKept(c, event, args)
	}
	if c.s != nil {
		return w.local.sendTo(c, event, args)
	}
	return w.publish(redisbus.Broadcast{Rooms: []string{c.id}, Event: event, Args: args, Tag: tagSockets})
}

func (w clusterWire) join(c *conn, room string) {
	if c.s != nil {
		w.local.join(c, room)
	}
}

func (w clusterWire) leave(c *conn, room string) {
	if c.s != nil {
		w.local.leave(c, room)
	}
}

func (w clusterWire) hangUp(c *conn) {
	if c.s != nil {
		w.local.hangUp(c)
	}
}
