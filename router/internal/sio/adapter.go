package sio

import (
	"sync"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// roomAdapterBuilder is the AdapterConstructor given to opts.SetAdapter: the
// server calls New once per namespace.
type roomAdapterBuilder struct {
	// sessions selects the library's session-aware adapter, which
	// connection state recovery needs: it keeps the broadcast packets of the
	// recovery window and the sessions of dropped sockets. The library picks
	// it by itself only when no adapter is set.
	sessions bool
	// t supplies the Handler's KeepSession.
	t *Server
	// store, when set, keeps the sessions instead (Config.Sessions):
	// sessions is then false, and the adapter appends no offsets.
	store SessionStore
}

// New wraps a fresh in-memory adapter for nsp.
func (b roomAdapterBuilder) New(nsp socket.Namespace) socket.Adapter {
	inner := socket.MakeAdapter()
	if b.sessions {
		inner = socket.MakeSessionAwareAdapter()
	}
	inner.Construct(nsp)
	return &roomAdapter{Adapter: inner, t: b.t, store: b.store}
}

// roomAdapter is the library's in-memory adapter (session-aware when
// connection state recovery is on) with membership changes serialised by
// one mutex.
//
// Why: in v3.0.6 AddAll, Del and DelAll are separate LoadOrStore / Delete /
// Len / LoadAndDelete steps on sync maps (adapter.go). When socket X joins a
// room while Y, its last member, leaves it, AddAll can add X to the room's
// set after Del saw it empty and just before Del removes the set from the
// rooms map: X's Rooms() lists the room but broadcasts to the room skip X
// (measured: ~1 join in 1,000 lost). The library's per-socket joinMu only orders a socket's
// own Join against its own disconnect cleanup, not two sockets sharing a
// room. Here AddAll, Del and DelAll all take mu, whoever calls them:
// socket.Join/Leave, the socket's connect (joins its id room) and disconnect
// cleanup (DelAll), and Namespace.SocketsJoin/SocketsLeave, which the
// library's AddSockets/DelSockets route through socket.Join/Leave.
//
// Those three are the only methods that write the library's rooms/sids maps.
// Everything else (Broadcast, Sockets, SocketRooms, FetchSockets, Rooms,
// Sids) only reads them, one map or set operation at a time, each of which
// is safe on its own, so it is left unlocked: a broadcast racing a join may
// or may not include the joiner, as with any concurrent join. AddSockets and
// DelSockets must not take mu themselves: they reach AddAll/Del through
// socket.Join/Leave, and mu is not reentrant. For the same reason a
// listener of the adapter's own events ("create-room", "join-room",
// "leave-room", "delete-room", emitted synchronously under mu) must not join
// or leave; nothing in this package listens to them.
//
// The Handler's own room registry is authoritative for who is in
// which room and in what order; this adapter only keeps the library's own
// maps, which socket.io broadcasts use, consistent.
type roomAdapter struct {
	socket.Adapter // the library adapter

	mu sync.Mutex
	t  *Server // for KeepSession; nil in adapters built without one
	// store keeps the sessions when set (sessions.go).
	store SessionStore

	// watched holds, for the socket ids being watched (watchSession), the
	// last session the library persisted for each (nil until one is).
	watched sync.Map // socket id -> *socket.SessionToPersist
}

// PersistSession stores a dropped socket's session, and remembers it for
// takeSession when its id is watched. The socket's data (its *Socket) is
// not kept: the recovered socket gets its own.
func (a *roomAdapter) PersistSession(session *socket.SessionToPersist) {
	if a.store != nil {
		return // the store has the session already: it is kept from connect on
	}
	if session != nil {
		kept := *session
		kept.Data = nil
		session = &kept
		if _, ok := a.watched.Load(session.Sid); ok {
			a.watched.Store(session.Sid, session)
		}
	}
	a.Adapter.PersistSession(session)
}

// watchSession starts remembering the sessions persisted for id.
func (a *roomAdapter) watchSession(id socket.SocketId) {
	a.watched.Store(id, (*socket.SessionToPersist)(nil))
}

// takeSession stops watching id and returns the last session persisted for
// it since watchSession, or nil.
func (a *roomAdapter) takeSession(id socket.SocketId) *socket.SessionToPersist {
	v, _ := a.watched.LoadAndDelete(id)
	sess, _ := v.(*socket.SessionToPersist)
	return sess
}

// RestoreSession recovers a session the library kept only if the
// Handler still keeps the socket (Handler.KeepSession); otherwise the
// client gets a new socket and socket.recovered false, and starts over.
func (a *roomAdapter) RestoreSession(pid socket.PrivateSessionId, offset string) (*socket.Session, error) {
	if a.store != nil {
		return a.restoreFromStore(pid, offset)
	}
	sess, err := a.Adapter.RestoreSession(pid, offset)
	if err != nil || sess == nil || sess.SessionToPersist == nil || a.t == nil {
		return sess, err
	}
	if !a.t.handlerOf(a.nspName()).KeepSession(string(sess.Sid)) {
		return nil, nil
	}
	return sess, nil
}

// AddAll adds id to rooms (socket.Join, connect).
func (a *roomAdapter) AddAll(id socket.SocketId, rooms *types.Set[socket.Room]) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.Adapter.AddAll(id, rooms)
}

// Del removes id from room (socket.Leave).
func (a *roomAdapter) Del(id socket.SocketId, room socket.Room) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.Adapter.Del(id, room)
}

// DelAll removes id from every room (disconnect cleanup).
func (a *roomAdapter) DelAll(id socket.SocketId) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.Adapter.DelAll(id)
}
