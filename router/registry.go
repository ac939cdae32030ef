package router

import (
	"maps"

	"github.com/rtcio/rtcio-router/rules"
)

// registry is the runtime state behind the rules: which sockets are
// connected, the rooms in join order, socket data and the stores of the
// three scopes. Rules, the relay's shared-room check, expressions' host
// functions and config tests (Local) reach that state only through these
// methods, so a second implementation (shared by several nodes) can take
// the in-memory one's place and be held to the same conformance suite
// (registry_test.go).
//
// Guarantees an implementation must keep:
//   - Per-event atomicity. The in-memory registry is used under the
//     router's event lock (state.mu), so an event's rules see and change it
//     as if alone. An implementation shared by nodes must at least make each
//     method atomic on its own, and join's snapshot exact: of two sockets
//     joining one room at once, exactly one sees the other in before, so
//     each pair hears of each other once and gets one #rtcio:init-offer.
//   - Join order. members, the before of join and the remaining of leave
//     list ids in the order they joined; a socket's rooms (roomsOf, conn
//     rooms) are in the order it joined them. Rejoining changes nothing.
//   - Scopes. A socket-scoped entry goes when its socket is forgotten, a
//     room-scoped entry when its room empties, a global one only when a
//     rule deletes it; a store that keeps its name and scope across
//     syncStores keeps its entries.
//   - Values read are never changed in place afterwards (expressions may
//     still hold them): writes replace lists, maps and entries.
//   - Lists returned are never nil: an empty one reaches clients as [].
//
// Local and cluster-wide: socket, count and each are about the sockets
// connected to this node (their conns, with the library's sockets, cannot
// leave the process); connected, members, roomSize, inRoom, roomsOf,
// shareRoom and socketData are about every socket of the cluster.
//
// Failures: the methods return no error, for the in-memory registry cannot
// fail. One that can (redisRegistry) logs and counts a failure (failures)
// and returns the empty result: no members, not connected, no entry.
type registry interface {
	// add registers c as connected; forget undoes it, after taking c out of
	// every room and dropping its socket-scoped entries and the room-scoped
	// entries of the rooms it empties.
	add(c *conn)
	forget(c *conn)
	// leaving marks c as on its way out, before its disconnect cleanup
	// runs its rules: from then on a join does not count c among the
	// members before it, so no newcomer is told of a peer whose leave it
	// will never hear. In one process the state lock already keeps a
	// join out of a cleanup; in a cluster, a join on another node can
	// fall between the cleanup's rules and its forget.
	leaving(c *conn)
	// socket returns the socket with id connected to this node, or nil
	// (also for a socket connected to another node of a cluster).
	socket(id string) *conn
	// connected reports whether id is connected to any node.
	connected(id string) bool
	// count is the number of sockets connected to this node; each visits
	// them, and fn may forget the one it is given.
	count() int
	each(fn func(*conn))

	// join adds c to room and returns the members before it; added is
	// false when c was already in it.
	join(c *conn, room string) (before []string, added bool)
	// leave takes c out of room and returns the members that remain.
	leave(c *conn, room string) (remaining []string)
	members(room string) []string
	roomSize(room string) int
	inRoom(room, id string) bool
	roomsOf(id string) []string
	// shareRoom reports whether c and the socket id are in a room together.
	shareRoom(c *conn, id string) bool

	// socketData is the data of socket id (nil if unknown); setData
	// replaces the named fields of c's data (a nil value deletes one).
	socketData(id string) map[string]any
	setData(c *conn, keys []string, values []any)

	// syncStores makes the stores those of set.
	syncStores(set *rules.Set)
	// storeGet reads store[key]; ok is false if there is no such entry.
	// Expressions read stores.NAME[key] through it (host.StoreGet), one
	// entry at a time, and must see the event's own earlier writes.
	storeGet(store, key string) (v any, ok bool)
	// storeSet writes store[key] (nil deletes); storeSetField writes
	// store[key][field] (nil deletes the field, and an emptied entry).
	storeSet(store, key string, v any)
	storeSetField(store, key, field string, v any)
	storeDelete(store, key string)
	storeDeleteField(store, key, field string)
	// storeEntries copies one store's entries; nil if there is no such
	// store. Expressions read stores.NAME used whole through it.
	storeEntries(store string) map[string]any

	// failures counts the calls that failed, each logged; always 0 in
	// memory.
	failures() uint64
}

var _ registry = (*memRegistry)(nil)

func (m *memRegistry) add(c *conn) {
	m.sockets[c.id] = c
	c.live = true
}

func (m *memRegistry) socket(id string) *conn { return m.sockets[id] }

func (m *memRegistry) connected(id string) bool {
	_, ok := m.sockets[id]
	return ok
}

func (m *memRegistry) count() int { return len(m.sockets) }

func (m *memRegistry) each(fn func(*conn)) {
	for _, c := range m.sockets {
		fn(c)
	}
}

func (m *memRegistry) members(name string) []string {
	if r := m.rooms[name]; r != nil {
		return ids(r.order)
	}
	return []string{}
}

func (m *memRegistry) roomSize(name string) int {
	if r := m.rooms[name]; r != nil {
		return len(r.order)
	}
	return 0
}

func (m *memRegistry) inRoom(name, id string) bool {
	r := m.rooms[name]
	return r != nil && r.has(id)
}

func (m *memRegistry) roomsOf(id string) []string {
	if c := m.sockets[id]; c != nil {
		return ids(c.rooms)
	}
	return []string{}
}

func (m *memRegistry) socketData(id string) map[string]any {
	if c := m.sockets[id]; c != nil {
		return c.data
	}
	return nil
}

func (*memRegistry) setData(c *conn, keys []string, values []any) { c.setData(keys, values) }

func (m *memRegistry) storeGet(store, key string) (any, bool) {
	sd := m.stores[store]
	if sd == nil {
		return nil, false
	}
	v, ok := sd.entries[key]
	return v, ok
}

func (*memRegistry) failures() uint64 { return 0 }

func (m *memRegistry) storeSet(store, key string, v any) {
	sd := m.stores[store]
	if v == nil {
		delete(sd.entries, key)
		return
	}
	sd.entries[key] = v
}

func (m *memRegistry) storeSetField(store, key, field string, v any) {
	sd := m.stores[store]
	old, _ := sd.entries[key].(map[string]any)
	next := make(map[string]any, len(old)+1)
	maps.Copy(next, old)
	if v == nil {
		delete(next, field)
	} else {
		next[field] = v
	}
	if len(next) == 0 {
		delete(sd.entries, key)
	} else {
		sd.entries[key] = next
	}
}

func (m *memRegistry) storeDelete(store, key string) { delete(m.stores[store].entries, key) }

func (m *memRegistry) storeDeleteField(store, key, field string) {
	sd := m.stores[store]
	old, ok := sd.entries[key].(map[string]any)
	if !ok {
		return
	}
	if _, has := old[field]; !has {
		return
	}
	next := maps.Clone(old)
	delete(next, field)
	if len(next) == 0 {
		delete(sd.entries, key)
	} else {
		sd.entries[key] = next
	}
}

func (m *memRegistry) storeEntries(store string) map[string]any {
	sd := m.stores[store]
	if sd == nil {
		return nil
	}
	return maps.Clone(sd.entries)
}
