package router

import (
	"cmp"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// roomAdapterBuilder is the AdapterConstructor given to opts.SetAdapter. The
// server calls New once per namespace; the adapters are kept so that the
// transport can hand the "/" one to the dispatcher.
type roomAdapterBuilder struct {
	log *slog.Logger

	mu   sync.Mutex
	byNs map[string]*roomAdapter
}

// New wraps a fresh in-memory adapter for nsp.
func (b *roomAdapterBuilder) New(nsp socket.Namespace) socket.Adapter {
	inner := socket.MakeAdapter()
	inner.Construct(nsp)
	a := newRoomAdapter(inner, b.log)
	b.mu.Lock()
	if b.byNs == nil {
		b.byNs = map[string]*roomAdapter{}
	}
	b.byNs[nsp.Name()] = a
	b.mu.Unlock()
	return a
}

// forNamespace returns the adapter built for the namespace name.
func (b *roomAdapterBuilder) forNamespace(name string) *roomAdapter {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byNs[name]
}

// roomAdapter is the library's in-memory adapter with room membership made
// atomic.
//
// Why: in v3.0.6 AddAll and Del are separate LoadOrStore / Delete /
// LoadAndDelete steps on sync maps; a join racing the last member's leave can
// add the joiner to a set that was just removed from the rooms map, so the
// socket believes it is in the room and broadcasts skip it (notes pitfall 5,
// still present in v3). Here every membership change (AddAll, Del, DelAll,
// whoever calls them: socket.Join/Leave, the library's disconnect cleanup,
// the dispatcher) runs under one lock, and the dispatcher gets compound
// operations (join and see who was there, leave and see who is left) that
// are atomic with respect to all of them.
//
// The adapter keeps its own index next to the library's maps, updated in the
// same critical section, because the library's sets are unordered and the
// dispatcher wants members in join order. Broadcasts still use the library's
// maps (read without our lock; each map/set operation is itself safe).
//
// Locking: opMu serialises membership changes together with the
// onRoomEmptied calls they cause; mu (RWMutex) guards the index and is held
// only inside the adapter. Readers (members, size, roomsOf, shareRoom) take
// mu only.
type roomAdapter struct {
	socket.Adapter // the library adapter: broadcasts, Rooms(), Sids(), SocketRooms()

	log *slog.Logger

	opMu sync.Mutex
	mu   sync.RWMutex
	seq  uint64                                     // join counter, orders members
	byRm map[socket.Room]map[socket.SocketId]uint64 // room -> member -> join seq
	byID map[socket.SocketId]map[socket.Room]uint64 // member -> room -> join seq

	onEmptied atomic.Pointer[func(socket.Room)]
}

func newRoomAdapter(inner socket.Adapter, log *slog.Logger) *roomAdapter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &roomAdapter{
		Adapter: inner,
		log:     log,
		byRm:    map[socket.Room]map[socket.SocketId]uint64{},
		byID:    map[socket.SocketId]map[socket.Room]uint64{},
	}
}

// setOnRoomEmptied installs the hook called whenever a room loses its last
// member, through any path: leave, leaveAll, socket.Leave, and the library's
// own cleanup when a socket disconnects (Socket._cleanup -> DelAll). A
// socket's own id room is not reported when that socket is removed from it.
//
// The hook runs synchronously on the goroutine that made the change, after
// the index lock is released but while membership changes are still
// serialised (opMu): no join can land between the room becoming empty and
// the hook returning, so the hook can drop room-scoped state without racing
// a new first member. It may call members/size/roomsOf/shareRoom. It must
// not call joinSnapshot/leave/leaveAll/socket.Join/socket.Leave (deadlock),
// must not block, and must not take a lock that the code calling leave (or
// disconnecting a socket) may already hold. A panic in the hook is recovered
// and logged. nil removes the hook.
func (a *roomAdapter) setOnRoomEmptied(fn func(room socket.Room)) {
	if fn == nil {
		a.onEmptied.Store(nil)
		return
	}
	a.onEmptied.Store(&fn)
}

// AddAll adds id to rooms (library entry point: socket.Join, connect).
func (a *roomAdapter) AddAll(id socket.SocketId, rooms *types.Set[socket.Room]) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.Adapter.AddAll(id, rooms)
	for _, r := range rooms.Keys() {
		a.indexAdd(id, r)
	}
}

// Del removes id from room (library entry point: socket.Leave).
func (a *roomAdapter) Del(id socket.SocketId, room socket.Room) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	_, emptied := a.del(id, room)
	if emptied && room != socket.Room(id) {
		a.fireEmptied(room)
	}
}

// DelAll removes id from every room (library entry point: disconnect cleanup).
func (a *roomAdapter) DelAll(id socket.SocketId) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.mu.Lock()
	emptied := a.orderedRooms(id)
	a.Adapter.DelAll(id)
	n := 0
	for _, r := range emptied {
		if a.indexDel(id, r) && r != socket.Room(id) {
			emptied[n] = r
			n++
		}
	}
	a.mu.Unlock()
	for _, r := range emptied[:n] {
		a.fireEmptied(r)
	}
}

// joinSnapshot atomically lists the members of room (other than id) and adds
// id to it. before is in join order (oldest first), so the dispatcher can
// tell the joiner who was there and whom to send offers to, and every member
// sees the same order.
//
// joined is true when this call added id. It is false, and nothing changes,
// when id was already a member (before then lists the other members), when
// id is not a live socket (not in its own id room: not yet connected or
// already cleaned up, so a join racing disconnect cannot leave a ghost
// member), or when room is another live socket's own id room (joining it
// would receive that socket's direct messages); before is nil in the last two
// cases.
func (a *roomAdapter) joinSnapshot(id socket.SocketId, room socket.Room) (before []socket.SocketId, joined bool) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, live := a.byRm[socket.Room(id)][id]; !live {
		return nil, false
	}
	if room != socket.Room(id) {
		if _, other := a.byID[socket.SocketId(room)]; other {
			return nil, false
		}
	}
	members := a.byRm[room]
	before = orderedMembers(members, id)
	if _, already := members[id]; already {
		return before, false
	}
	a.Adapter.AddAll(id, types.NewSet(room))
	a.indexAdd(id, room)
	return before, true
}

// leave removes id from room and returns how many members remain. Leaving
// one's own id room is ignored (the socket must stay addressable). If the
// room became empty, onRoomEmptied has run before leave returns.
func (a *roomAdapter) leave(id socket.SocketId, room socket.Room) (remaining int) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if room == socket.Room(id) {
		return a.size(room)
	}
	remaining, emptied := a.del(id, room)
	if emptied {
		a.fireEmptied(room)
	}
	return remaining
}

// leaveAll removes id from every room except its own id room and returns the
// rooms that became empty, in the order id joined them (onRoomEmptied has
// already run for each). The library's disconnect cleanup later removes the
// id room too.
func (a *roomAdapter) leaveAll(id socket.SocketId) (emptied []socket.Room) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.mu.Lock()
	for _, r := range a.orderedRooms(id) {
		if r == socket.Room(id) {
			continue
		}
		a.Adapter.Del(id, r)
		if a.indexDel(id, r) {
			emptied = append(emptied, r)
		}
	}
	a.mu.Unlock()
	for _, r := range emptied {
		a.fireEmptied(r)
	}
	return emptied
}

// members returns the members of room in join order (oldest first).
func (a *roomAdapter) members(room socket.Room) []socket.SocketId {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return orderedMembers(a.byRm[room], "")
}

// size returns the number of members of room.
func (a *roomAdapter) size(room socket.Room) int {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return len(a.byRm[room])
}

// roomsOf returns the rooms id is in, in join order, without its own id room.
func (a *roomAdapter) roomsOf(id socket.SocketId) []socket.Room {
	a.mu.RLock()
	defer a.mu.RUnlock()
	rooms := a.orderedRooms(id)
	return slices.DeleteFunc(rooms, func(r socket.Room) bool { return r == socket.Room(id) })
}

// shareRoom reports whether x and y are both members of some room other
// than their own id rooms (e.g. may x send y a direct signaling message).
func (a *roomAdapter) shareRoom(x, y socket.SocketId) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	rx, ry := a.byID[x], a.byID[y]
	if len(ry) < len(rx) {
		rx, ry = ry, rx
	}
	for r := range rx {
		if r == socket.Room(x) || r == socket.Room(y) {
			continue
		}
		if _, ok := ry[r]; ok {
			return true
		}
	}
	return false
}

// del removes id from room in both the library maps and the index. Callers
// hold opMu.
func (a *roomAdapter) del(id socket.SocketId, room socket.Room) (remaining int, emptied bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.Adapter.Del(id, room)
	emptied = a.indexDel(id, room)
	return len(a.byRm[room]), emptied
}

// indexAdd records id in room; callers hold mu.
func (a *roomAdapter) indexAdd(id socket.SocketId, room socket.Room) {
	m := a.byRm[room]
	if m == nil {
		m = map[socket.SocketId]uint64{}
		a.byRm[room] = m
	}
	if _, ok := m[id]; ok {
		return
	}
	a.seq++
	m[id] = a.seq
	r := a.byID[id]
	if r == nil {
		r = map[socket.Room]uint64{}
		a.byID[id] = r
	}
	r[room] = a.seq
}

// indexDel removes id from room and reports whether that removed the room's
// last member; callers hold mu.
func (a *roomAdapter) indexDel(id socket.SocketId, room socket.Room) (emptied bool) {
	m, ok := a.byRm[room]
	if !ok {
		return false
	}
	if _, ok := m[id]; !ok {
		return false
	}
	delete(m, id)
	if len(m) == 0 {
		delete(a.byRm, room)
		emptied = true
	}
	if r := a.byID[id]; r != nil {
		delete(r, room)
		if len(r) == 0 {
			delete(a.byID, id)
		}
	}
	return emptied
}

// orderedRooms lists id's rooms in join order; callers hold mu.
func (a *roomAdapter) orderedRooms(id socket.SocketId) []socket.Room {
	r := a.byID[id]
	out := make([]socket.Room, 0, len(r))
	for room := range r {
		out = append(out, room)
	}
	slices.SortFunc(out, func(x, y socket.Room) int { return cmp.Compare(r[x], r[y]) })
	return out
}

// orderedMembers lists m's members in join order, leaving out except.
func orderedMembers(m map[socket.SocketId]uint64, except socket.SocketId) []socket.SocketId {
	out := make([]socket.SocketId, 0, len(m))
	for id := range m {
		if id != except {
			out = append(out, id)
		}
	}
	slices.SortFunc(out, func(x, y socket.SocketId) int { return cmp.Compare(m[x], m[y]) })
	return out
}

// fireEmptied calls the hook for room; callers hold opMu but not mu.
func (a *roomAdapter) fireEmptied(room socket.Room) {
	fn := a.onEmptied.Load()
	if fn == nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("onRoomEmptied hook panicked", "room", string(room), "panic", r)
		}
	}()
	(*fn)(room)
}
