package router

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rtcio/rtcio-router/router/internal/sio"
	"github.com/rtcio/rtcio-router/rules"
)

// state is what an event's rules run against: the registry of sockets,
// rooms, socket data and stores, and the event lock with the working space
// of the event holding it (evaluator, scratch, wire, clock). A rule runs
// wholly inside the lock, so each event is applied atomically, as on Node's
// single thread: two sockets joining one room at once each see the other
// exactly once. Parsing, JSON and network writes happen outside the lock.
type state struct {
	mu sync.RWMutex
	// registry holds the sockets, rooms, socket data and stores
	// (registry.go); memRegistry unless another implementation is given.
	// Its join, leave and forget are wrapped below so the transport's room
	// membership follows.
	registry
	// evaluator runs every expression of the rules. Rules run one at a
	// time under mu, so one reused evaluator serves them all without
	// per-run allocation.
	evaluator rules.Evaluator
	// scratch is the environment of the event being applied (actions.go).
	scratch scratch
	// peak is the most sockets held at once since Router.SocketsPeak last
	// read it; under mu.
	peak int
	// wire carries membership changes to the transport.
	wire wire
	// joinedAt is, in a cluster, the join order number of the room the
	// event being applied joined (0 if none): what it then sends to rooms
	// reaches, on other nodes, only members that joined before it, as on
	// one node, where the event lock keeps later joiners out until it
	// ends. Without it, a member that joined on another node meanwhile
	// would hear of the joiner twice (backfilled, then told) and get a
	// second #rtcio:init-offer for the pair.
	joinedAt int64
	// reads holds, for the event being applied, the store entries its
	// expressions read, when the registry is not in memory (cacheReads):
	// the built-in join-room reads stores.media[peer] three times per
	// peer, a round trip to Redis each without it. Every store write,
	// leave and forget empties it, so an expression reads what its event
	// wrote; beginEvent empties it, so no event reads another's. Like an
	// event's snapshot of old, it does not see what other nodes write
	// meanwhile, but it holds only the entries read.
	reads      map[storeRef]storeRead
	cacheReads bool
	// fixedNow, when set, stops the clock of expressions and rate limits
	// (config tests fix it); nil is the real time. Atomic because rate
	// limits read it outside mu.
	fixedNow atomic.Pointer[time.Time]
}

// conn is one connected socket as the router tracks it.
type conn struct {
	// s is the socket.io socket. Connection state recovery replaces it,
	// under state.mu, when the client comes back (recovery.go); code
	// outside the lock reads it only on that socket's own event path.
	s  *sio.Socket
	id string
	// closing is set as soon as the library reports the disconnect, so
	// events still queued behind it are dropped without taking the lock.
	closing atomic.Bool
	// Guarded by state.mu.
	data  map[string]any // replaced, never mutated: expressions may hold the old one
	rooms []string       // in join order, without the socket's own id room
	// seqs is each room's place of the socket in the cluster's join order
	// (redisRegistry); nil on a single node, where the event lock orders
	// joins.
	seqs  map[string]int64
	auth  map[string]any
	query map[string]any
	// claims are the verified JWT claims (auth.jwt), nil without a token.
	claims map[string]any
	live   bool // registered in state.sockets
	// suspended is set while the transport is gone and the session is
	// kept for the client to recover it (recovery.go); nil when attached.
	suspended *suspension
	// pid is the client's private session id, kept in Redis with the
	// socket when recovery is on in a cluster (recovery_cluster.go); "".
	pid string
	// replayedUpTo is, for a session recovered in a cluster, the offset
	// of the last event replayed to it: a delivery of an older one was
	// replayed already and is not sent again. Guarded by state.mu.
	replayedUpTo string
	// limits are the socket's rate-limit buckets; used outside mu, in the
	// socket's own event order, with a lock of their own.
	limits limiter
}

// room is one room's members in join order; set makes lookups O(1) for the
// relay's shared-room check.
type room struct {
	order []string
	set   map[string]struct{}
}

// storeData is one store's entries. Entry values are never mutated in
// place, so a value an expression has read stays valid.
type storeData struct {
	scope   rules.Scope
	entries map[string]any
}

func newState() *state {
	return &state{registry: newMemRegistry()}
}

// join adds c to name in the registry and, if it was not there yet, in
// the transport; it returns the members before it. Callers hold mu.
func (st *state) join(c *conn, name string) (before []string, added bool) {
	before, added = st.registry.join(c, name)
	if added {
		st.wire.join(c, name)
		if seq := c.seqs[name]; seq > 0 {
			st.joinedAt = seq
		}
	}
	return before, added
}

// beginEvent clears what one event leaves in the state for the rest of
// it (joinedAt, reads). Callers hold mu.
func (st *state) beginEvent() {
	st.joinedAt = 0
	clear(st.reads)
	_, inMemory := st.registry.(*memRegistry)
	st.cacheReads = !inMemory
}

// storeRef names one entry of one store.
type storeRef struct{ store, key string }

// storeRead is one answer of storeGet.
type storeRead struct {
	v  any
	ok bool
}

// readEntry is storeGet for expressions: through the event's reads when
// they are kept. Callers hold mu.
func (st *state) readEntry(store, key string) (any, bool) {
	if !st.cacheReads {
		return st.registry.storeGet(store, key)
	}
	ref := storeRef{store, key}
	if r, ok := st.reads[ref]; ok {
		return r.v, r.ok
	}
	v, ok := st.registry.storeGet(store, key)
	if st.reads == nil {
		st.reads = map[storeRef]storeRead{}
	}
	st.reads[ref] = storeRead{v, ok}
	return v, ok
}

// storeSet, storeSetField, storeDelete and storeDeleteField write through
// to the registry and forget the event's reads. Callers hold mu.
func (st *state) storeSet(store, key string, v any) {
	clear(st.reads)
	st.registry.storeSet(store, key, v)
}

func (st *state) storeSetField(store, key, field string, v any) {
	clear(st.reads)
	st.registry.storeSetField(store, key, field, v)
}

func (st *state) storeDelete(store, key string) {
	clear(st.reads)
	st.registry.storeDelete(store, key)
}

func (st *state) storeDeleteField(store, key, field string) {
	clear(st.reads)
	st.registry.storeDeleteField(store, key, field)
}

// syncStores makes the registry's stores those of set. Callers hold mu
// (or own the state alone).
func (st *state) syncStores(set *rules.Set) {
	clear(st.reads)
	st.registry.syncStores(set)
}

// leave takes c out of name in the registry and the transport and returns
// the members that remain. Callers hold mu.
func (st *state) leave(c *conn, name string) (remaining []string) {
	wasIn := st.inRoom(name, c.id)
	clear(st.reads) // an emptied room drops its room-scoped entries
	remaining = st.registry.leave(c, name)
	if wasIn {
		st.wire.leave(c, name)
	}
	return remaining
}

// forget takes c out of the registry (every room, its socket-scoped
// entries) and out of its rooms in the transport. Callers hold mu.
func (st *state) forget(c *conn) {
	rooms := c.rooms // forget replaces c.rooms; this list stays as it was
	clear(st.reads)
	st.registry.forget(c)
	for _, name := range rooms {
		st.wire.leave(c, name)
	}
}

// leaving marks c as on its way out (registry.leaving); call it first in a
// disconnect cleanup.
func (st *state) leaving(c *conn) { st.registry.leaving(c) }

// memRegistry is the in-memory registry: maps guarded by the router's
// event lock (state.mu), which its callers hold.
type memRegistry struct {
	sockets map[string]*conn
	rooms   map[string]*room
	stores  map[string]*storeData // by store name
}

func newMemRegistry() *memRegistry {
	return &memRegistry{
		sockets: map[string]*conn{},
		rooms:   map[string]*room{},
		stores:  map[string]*storeData{},
	}
}

// syncStores makes the stores match set: a store that keeps its name and
// scope keeps its entries, a removed one is dropped, a new one starts empty.
// Callers hold mu.
func (m *memRegistry) syncStores(set *rules.Set) {
	next := make(map[string]*storeData, len(set.Stores))
	for _, decl := range set.Stores {
		sd := m.stores[decl.Name]
		if sd == nil || sd.scope != decl.Scope {
			sd = &storeData{scope: decl.Scope, entries: map[string]any{}}
		}
		next[decl.Name] = sd
	}
	m.stores = next
}

// join adds c to name and returns the members before it, in join order.
// Callers hold mu.
func (m *memRegistry) join(c *conn, name string) (before []string, added bool) {
	r := m.rooms[name]
	if r == nil {
		r = &room{set: map[string]struct{}{}}
		m.rooms[name] = r
	}
	before = ids(r.order)
	if r.has(c.id) {
		return before, false
	}
	// Appending in place is safe for readers of the old lists (expressions
	// hold socket.rooms): they never look past their own length, and lists
	// are only shrunk by copying (leave). Copying here instead made filling
	// a room, or one socket's room list, quadratic.
	r.order = append(r.order, c.id)
	r.set[c.id] = struct{}{}
	c.rooms = append(c.rooms, name)
	return before, true
}

// leave removes c from name and returns the members that remain. An emptied
// room is forgotten with its room-scoped store entries. Callers hold mu.
func (m *memRegistry) leave(c *conn, name string) (remaining []string) {
	r := m.rooms[name]
	if r == nil {
		return []string{}
	}
	if !r.has(c.id) {
		return ids(r.order)
	}
	c.rooms = slices.DeleteFunc(slices.Clone(c.rooms), func(n string) bool { return n == name })
	m.dropMember(c, name, r)
	return ids(r.order)
}

// dropMember takes c out of room r called name, leaving c.rooms to the
// caller, and forgets the room if it is now empty. Callers hold mu.
func (m *memRegistry) dropMember(c *conn, name string, r *room) {
	delete(r.set, c.id)
	// A new list, not an edit in place: an expression may hold the old one.
	r.order = slices.DeleteFunc(slices.Clone(r.order), func(id string) bool { return id == c.id })
	if len(r.order) == 0 {
		delete(m.rooms, name)
		for _, sd := range m.stores {
			if sd.scope == rules.ScopeRoom {
				delete(sd.entries, name)
			}
		}
	}
}

// forget removes c from every room and drops its socket-scoped entries.
// It costs one pass over c's rooms (and each room's members), so a socket
// in many rooms cannot hold the lock for long: leaving them one by one
// copied the room list once per room. Callers hold mu.
// leaving has nothing to do: callers hold the state lock for the whole
// cleanup, so no join sees c meanwhile.
func (m *memRegistry) leaving(*conn) {}

func (m *memRegistry) forget(c *conn) {
	for _, name := range c.rooms {
		if r := m.rooms[name]; r != nil && r.has(c.id) {
			m.dropMember(c, name, r)
		}
	}
	c.rooms = []string{} // [] in JSON, never null
	for _, sd := range m.stores {
		if sd.scope == rules.ScopeSocket {
			delete(sd.entries, c.id)
		}
	}
	delete(m.sockets, c.id)
	c.live = false
}

// has reports whether id is a member of r.
func (r *room) has(id string) bool {
	_, in := r.set[id]
	return in
}

// shareRoom reports whether a and b are together in some room. Callers
// hold mu (read).
func (m *memRegistry) shareRoom(a *conn, b string) bool {
	for _, name := range a.rooms {
		if _, in := m.rooms[name].set[b]; in {
			return true
		}
	}
	return false
}

// ids copies a list of ids or rooms, never returning nil: an empty list
// must reach clients as [], not null.
func ids(list []string) []string {
	return append(make([]string, 0, len(list)), list...)
}

// setData replaces c's socket data with a copy holding the new fields.
func (c *conn) setData(keys []string, values []any) {
	next := make(map[string]any, len(c.data)+len(keys))
	maps.Copy(next, c.data)
	for i, k := range keys {
		if values[i] == nil {
			delete(next, k)
			continue
		}
		next[k] = values[i]
	}
	c.data = next
}

// host answers expressions' questions about the server from the registry.
// Expressions run only while a rule holds state.mu, so these methods take
// no lock.
type host struct{ st *state }

var (
	_ rules.Host   = host{}
	_ rules.Stores = host{}
)

func (h host) Members(name string) []string        { return h.st.members(name) }
func (h host) RoomSize(name string) int            { return h.st.roomSize(name) }
func (h host) SocketData(id string) map[string]any { return h.st.socketData(id) }
func (h host) RoomsOf(id string) []string          { return h.st.roomsOf(id) }
func (h host) Connected(id string) bool            { return h.st.connected(id) }
func (h host) Now() time.Time                      { return h.st.now() }

// StoreGet and StoreEntries are what expressions read as stores.NAME[key]
// and stores.NAME: one entry, or one store, from the registry, never a
// snapshot of every store. Each event's environment holds the host as its
// Stores, so reads go to the live registry (through the event's reads,
// readEntry) and see the event's own earlier writes.
func (h host) StoreGet(store, key string) (any, bool)   { return h.st.readEntry(store, key) }
func (h host) StoreEntries(store string) map[string]any { return h.st.storeEntries(store) }

// now is the server clock: the fixed time of a config test, or the real one.
func (st *state) now() time.Time {
	if t := st.fixedNow.Load(); t != nil {
		return *t
	}
	return time.Now()
}
