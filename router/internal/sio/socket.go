package sio

import (
	"fmt"
	"net/url"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// Handler is what runs on top of the server: it decides handshakes, learns
// of each socket, handles its events and hears of its end. The server keeps
// the library's ordering rules so that a Handler never has to:
//
//   - Admit runs before a socket exists for the client; Connect (or
//     Recover) before any of the socket's events; Disconnect exactly once
//     per socket that Connect or Recover saw, and only after it returned.
//   - A socket whose connection is gone before Connect would run is
//     dropped without reaching the Handler at all.
//   - Event is called in the order the client sent, one at a time per
//     socket. The event counts against the socket's inbound cap
//     (Config.MaxPending) until Event returns.
//   - Never wait inside Connect, Recover or Event for an ack from the same
//     client: its packets queue behind the call.
type Handler interface {
	// Admit decides a handshake, recoveries included. A non-nil error
	// refuses it: the client gets connect_error with the error's message
	// (and a *Refusal's Data). admission rides on the socket
	// (Socket.Admission).
	Admit(s *Socket) (admission any, err error)
	// Connect is a new socket.
	Connect(s *Socket)
	// Recover is a socket that carries on a session the server kept for
	// Config.Recovery (same id); its missed room emits are being replayed
	// to it. It reports false when the Handler gave the session up (it
	// must then have closed s).
	Recover(s *Socket) bool
	// Event is one event of s.
	Event(s *Socket, ev Event)
	// Disconnect reports that s closed, with socket.io's reason (see
	// Recoverable and ReasonGoodbye). It may be called from inside a send
	// the Handler makes (a write that fails closes the connection at
	// once): it must not wait for anything held while sending.
	Disconnect(s *Socket, reason string)
	// KeepSession is asked before a session kept for recovery is given
	// back to a client: false makes the client start a new session.
	KeepSession(id string) bool
}

// Event is one event a client sent: its name and arguments, decoded.
type Event struct {
	Name string
	// Args are the arguments after the name as encoding/json decodes
	// them (map[string]any, []any, string, float64, bool, nil). Empty when
	// Object holds the only argument.
	Args []any
	// Object is the single argument of a pass-through event
	// (Config.PassThrough) kept as the client's JSON; nil for every other
	// event, and for a pass-through event whose argument is not one
	// plain object (it is then decoded into Args). Without connection
	// state recovery, an event read on the WebSocket direct path has it
	// read the client's frame in place: valid until the Handler's Event
	// returns, so a Handler that keeps it past that keeps Decode's copy.
	Object *RawObject
	// Reply answers the client's ack callback once; nil when the client
	// asked for none.
	Reply func(any)
	// text is the event's JSON as sent, `["name",arg,...]`, valid until
	// the Handler's Event returns; nil when unknown.
	text []byte
}

// Verbatim returns the arguments as the client wrote them, for handlers
// that forward them unchanged: each a *RawJSON holding its own copy of the
// client's JSON (the encoder writes it as it came, key order included,
// as a Node server forwards it), or the decoded value where the JSON is
// unknown or not valid UTF-8 (fatal to a browser's WebSocket; encoding the
// value writes U+FFFD instead). It allocates: call it once per event, and
// only inside Event.
func (e *Event) Verbatim() []any {
	return verbatim(e.text, e.Args)
}

// Refusal is an Admit error with data for the client's connect_error.
type Refusal struct {
	Message string
	Data    any
}

func (r *Refusal) Error() string { return r.Message }

// ReasonGoodbye is the disconnect reason of a client that left on purpose
// (socket.disconnect() in the browser), also when its DISCONNECT packet
// lost the race with its transport's close.
const ReasonGoodbye = "client namespace disconnect"

// Recoverable reports whether a disconnect for reason leaves a session the
// client may recover (with Config.Recovery on): a transport that broke, not
// a client that said goodbye nor a server that hung up.
func Recoverable(reason string) bool { return socket.RECOVERABLE_DISCONNECT_REASONS.Has(reason) }

// Socket is one client's socket.io socket on the main namespace, or on a
// namespace served with Server.Namespace. Its methods are safe from any
// goroutine.
type Socket struct {
	srv *Server
	// ls is the library's socket; nil for a lean one (lean.go), whose
	// connection and rooms are in lean and whose handshake auth is auth.
	ls   *socket.Socket
	lean *leanSocket
	auth map[string]any
	id   string
	// h is the Handler of the socket's namespace (Server.Namespace); the
	// server's own for "/".
	h Handler

	admission any
	value     atomic.Value // the Handler's, see Bind

	// phase orders Disconnect after Connect/Recover, see announce.
	phase  atomic.Int32
	reason atomic.Pointer[string]

	// guard is the engine connection's guard, found on first use.
	guard atomic.Pointer[connGuard]
}

// Socket phases: the Handler has not returned from Connect/Recover yet
// (the socket may already be gone: phaseGoneEarly), it has (phaseOpen),
// Disconnect was reported (phaseReported).
const (
	phaseNew int32 = iota
	phaseOpen
	phaseGoneEarly
	phaseReported
)

// ID is the socket id, what peers address it by.
func (s *Socket) ID() string { return s.id }

// Auth is the handshake's auth payload (an empty map if none).
func (s *Socket) Auth() map[string]any {
	if s.lean != nil {
		return s.auth
	}
	if hs := s.ls.Handshake(); hs != nil && hs.Auth != nil {
		return hs.Auth
	}
	return map[string]any{}
}

// Query is the handshake's query string.
func (s *Socket) Query() url.Values {
	if s.lean != nil {
		return s.lean.lc.query()
	}
	out := url.Values{}
	hs := s.ls.Handshake()
	if hs == nil {
		return out
	}
	for k, v := range hs.Query {
		switch v := v.(type) {
		case []string:
			out[k] = v
		case string:
			out[k] = []string{v}
		}
	}
	return out
}

// Admission is what Admit returned for this socket.
func (s *Socket) Admission() any { return s.admission }

// Bind attaches the Handler's own value to s, for its Event and
// Disconnect; set it in Connect or Recover.
func (s *Socket) Bind(v any) { s.value.Store(&bound{v}) }

// Bound is the value given to Bind, or nil.
func (s *Socket) Bound() any {
	if b, ok := s.value.Load().(*bound); ok {
		return b.v
	}
	return nil
}

type bound struct{ v any }

// Connected reports whether the library still counts s as connected: true
// until its disconnect cleanup has finished.
func (s *Socket) Connected() bool {
	if s.lean != nil {
		return s.lean.open.Load()
	}
	return s.ls.Connected()
}

// Emit sends an event to this socket. With recovery on, an event for a
// socket whose transport is gone is kept for the client's replay. On a
// WebSocket it is written without the library's packet objects when
// nothing else would change (directsend.go).
func (s *Socket) Emit(event string, args ...any) error {
	if s.lean != nil {
		return s.leanEmit(event, args)
	}
	if s.emitDirect(event, args) {
		return nil
	}
	return s.ls.Emit(event, args...)
}

// Join adds s to the application room name. Application rooms live apart
// from socket ids (see libraryRoom), whatever their names.
func (s *Socket) Join(room string) {
	if s.lean != nil {
		s.srv.lean.join(s, room)
		return
	}
	s.ls.Join(libraryRoom(room))
}

// Leave takes s out of the application room name.
func (s *Socket) Leave(room string) {
	if s.lean != nil {
		s.srv.lean.leave(s, room)
		return
	}
	s.ls.Leave(libraryRoom(room))
}

// Disconnect sends the client a DISCONNECT packet and closes the socket:
// the client sees "io server disconnect" and does not reconnect by itself,
// so a socket thrown out stays out until its application decides.
func (s *Socket) Disconnect() {
	if s.lean != nil {
		s.leanDisconnect()
		return
	}
	s.ls.Disconnect(false)
}

// Congested reports whether more than half of the slow-consumer allowance
// (Config.MaxOutgoing packets or MaxOutgoingBytes) of s's connection waits
// to be written. Why half: a sender that stops delivering there can fill
// at most that half, so a slow reader is never dropped for what one sender
// pushed at it; the other half is room for everything else on its way.
// Cheap enough for every message: no allocation, no map lookup after the
// first call.
func (s *Socket) Congested() bool {
	if s.lean != nil {
		n, b := s.lean.lc.unsent()
		return n > int64(s.srv.cfg.MaxOutgoing/2) || b > s.srv.cfg.MaxOutgoingBytes/2
	}
	g := s.guard.Load()
	if g == nil || g.conn != s.ls.Conn() {
		if g = s.srv.guardOf(s.ls); g == nil {
			return false
		}
		s.guard.Store(g)
	}
	select {
	case <-g.closed:
		return false // gone: what a send does with it is not the backlog's business
	default:
	}
	n, b := g.backlog()
	return n > int64(s.srv.cfg.MaxOutgoing/2) || b > s.srv.cfg.MaxOutgoingBytes/2
}

// Backlog is what waits to be written to s's connection: packets and
// payload bytes.
func (s *Socket) Backlog() (packets, bytes int64) {
	if s.lean != nil {
		return s.lean.lc.unsent()
	}
	if g := s.srv.guardOf(s.ls); g != nil {
		return g.backlog()
	}
	return 0, 0
}

// socketOf returns ls's Socket, making it on first use. The library keeps
// it as the socket's data (which it otherwise never reads); a recovered
// socket starts with none (adapter.PersistSession keeps none).
func (srv *Server) socketOf(ls *socket.Socket) *Socket {
	if s, ok := ls.Data().(*Socket); ok && s.ls == ls {
		return s
	}
	s := &Socket{srv: srv, ls: ls, id: string(ls.Id()), h: srv.handlerOf(ls.Nsp().Name())}
	ls.SetData(s)
	return s
}

// admit is the namespace middleware: the Handler's Admit, with a panic
// turned into a refusal.
func (srv *Server) admit(ls *socket.Socket, next func(*socket.ExtendedError)) {
	defer func() {
		if v := recover(); v != nil {
			srv.log.Error("handshake check panicked; connection refused", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			next(socket.NewExtendedError("internal error", nil))
		}
	}()
	s := srv.socketOf(ls)
	admission, err := s.h.Admit(s)
	if err != nil {
		if ls.Recovered() {
			srv.replayed.Delete(s.id) // no Recover will take it (ReplayedUpTo)
		}
		var data any
		if ref, ok := err.(*Refusal); ok {
			data = ref.Data
		}
		next(socket.NewExtendedError(err.Error(), data))
		return
	}
	s.admission = admission
	next(nil)
}

// onConnection runs in the new socket's task queue, so the socket's first
// packets queue behind it. Order matters (see Handler): listeners first,
// then the ghost check, then the Handler.
//
// Why the ghost check: v3.0.6 runs "connection" on the socket's task queue
// after CONNECT was written, while a transport close runs the socket's
// disconnect on another goroutine, concurrently: checking first and
// registering afterwards leaves a window in which "disconnecting" fires
// with no listener and the Handler would keep the socket forever. The
// engine marks the connection closed before it emits the disconnect
// events, so a close after the check reaches the listener, and one before
// it is caught by the check. Measured: 0 ghosts in 25 000 connections with
// this order and 3-4 per 5 000 without.
func (srv *Server) onConnection(args ...any) {
	ls, ok := args[0].(*socket.Socket)
	if !ok {
		return
	}
	s := srv.socketOf(ls)
	recovered := ls.Recovered()
	if recovered {
		srv.awaitOldCleanup(s)
	}
	srv.latest.Store(s.id, s)
	_ = ls.On("disconnecting", func(a ...any) {
		reason := ""
		if len(a) > 0 {
			reason = fmt.Sprint(a[0])
		}
		if srv.saidGoodbye(ls) {
			// The client's DISCONNECT lost the race with its transport
			// close; it left on purpose.
			reason = ReasonGoodbye
		}
		s.gone(reason)
	})
	_ = ls.On("disconnect", func(...any) { srv.latest.CompareAndDelete(s.id, s) })
	ls.Use(func(args []any, _ func(error)) { srv.libraryEvent(s, args) })
	if g := srv.guardOf(ls); g != nil && ls.Nsp().Name() == "/" {
		g.socketID.Store(&s.id)
		g.route.Store(s) // events may take the direct path (direct.go)
	}
	if srv.beforeGhostCheck != nil {
		srv.beforeGhostCheck(s)
	}
	if ls.Conn().ReadyState() != "open" {
		// A ghost: its disconnect cleanup (rooms, namespace registry) must
		// still run in the library; the Handler never hears of it.
		s.phase.Store(phaseReported)
		ls.Disconnect(true)
		return
	}
	kept := true
	func() {
		defer func() {
			if v := recover(); v != nil {
				srv.log.Error("connection handler panicked; socket closed", "socket_id", s.id, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				kept = false
				ls.Disconnect(true)
			}
		}()
		if recovered {
			kept = s.h.Recover(s)
		} else {
			s.h.Connect(s)
		}
	}()
	if recovered && kept && ls.Connected() {
		// A cleanup of an earlier socket with this id that ran after this
		// one was registered removed it from the namespace (the library
		// removes by id): register it again, or broadcasts would skip it.
		if cur, ok := ls.Nsp().Sockets().Load(ls.Id()); !ok || cur != ls {
			ls.Nsp().Sockets().Store(ls.Id(), ls)
		}
	}
	s.announced()
}

// gone records the library's disconnect of s and reports it, unless the
// Handler is still in Connect/Recover (announced reports it then).
func (s *Socket) gone(reason string) {
	s.reason.Store(&reason)
	for {
		switch s.phase.Load() {
		case phaseOpen:
			if s.phase.CompareAndSwap(phaseOpen, phaseReported) {
				s.srv.report(s, reason)
				return
			}
		case phaseNew:
			if s.phase.CompareAndSwap(phaseNew, phaseGoneEarly) {
				return
			}
		default:
			return
		}
	}
}

// announced marks the Handler's Connect/Recover as returned, and reports a
// disconnect that happened meanwhile.
func (s *Socket) announced() {
	if s.phase.CompareAndSwap(phaseNew, phaseOpen) {
		return
	}
	if s.phase.CompareAndSwap(phaseGoneEarly, phaseReported) {
		s.srv.report(s, *s.reason.Load())
	}
}

func (srv *Server) report(s *Socket, reason string) {
	defer func() {
		if v := recover(); v != nil {
			srv.log.Error("disconnect handler panicked", "socket_id", s.id, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	s.h.Disconnect(s, reason)
}

// libraryEvent takes an event from the library's path (the socket's task
// queue): args is what the decoder produced, the *Event, with the
// library's ack callback appended when the client asked for one.
func (srv *Server) libraryEvent(s *Socket, args []any) {
	g := srv.guardOf(s.ls)
	defer func() {
		if g != nil {
			g.done()
		}
		if v := recover(); v != nil {
			srv.log.Error("event handler panicked; event dropped", "socket_id", s.id, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	if len(args) == 0 {
		return
	}
	ev, ok := args[0].(*Event)
	if !ok {
		return
	}
	if n := len(args); n > 1 {
		if ack, ok := args[n-1].(socket.Ack); ok {
			ev.Reply = func(v any) { ack([]any{v}, nil) }
		}
	}
	s.h.Event(s, *ev)
}

// oldCleanupWait bounds how long a recovery waits for the previous
// socket's library cleanup; it normally takes microseconds.
const oldCleanupWait = 2 * time.Second

// awaitOldCleanup waits, when the previous socket with s's id is still
// being closed by the library, until its cleanup has run. Why: v3.0.6 keys
// that cleanup by id (adapter.DelAll, namespace.Remove), so when the server
// notices the old transport die while the client is already recovering on
// a new one, the old socket's cleanup can run after the new socket has had
// its rooms restored, and take them away: the new socket would look
// recovered and hear no room emit.
func (srv *Server) awaitOldCleanup(s *Socket) {
	v, ok := srv.latest.Load(s.id)
	if !ok {
		return
	}
	old := v.(*Socket)
	if old == s || old.phase.Load() < phaseGoneEarly {
		return // not closing: Recover sees it open (CloseDuplicate)
	}
	// The library's socket is Connected() until its cleanup has finished
	// (Socket._onclose); it offers no event in between to wait on.
	for deadline := time.Now().Add(oldCleanupWait); old.ls.Connected() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
}

// CloseDuplicate closes the two live sockets of one session: old, whose
// transport the server has not seen die, and cur, the client's recovery
// of it on a new transport (a half-open TCP connection). The library keys
// rooms and sockets by id, so both cannot stay. The session is left kept
// with rooms (the Handler's application rooms, authoritative) so the
// client, which sees a transport close, recovers it with every room emit
// sent meanwhile. Why rooms are given: v3.0.6 cleans a closed socket up by
// id, so the first close takes the id out of every room and the second
// then persists a session with none.
func (srv *Server) CloseDuplicate(old, cur *Socket, rooms []string) {
	ad, _ := cur.ls.Nsp().Adapter().(*roomAdapter)
	if ad != nil {
		ad.watchSession(cur.ls.Id())
	}
	old.ls.Conn().Close(true)
	cur.ls.Conn().Close(true)
	if ad == nil {
		return
	}
	sess := ad.takeSession(cur.ls.Id())
	if sess == nil {
		return // recovery off, or nothing persisted
	}
	fixed := *sess
	fixed.Rooms = types.NewSet(socket.Room(cur.id))
	for _, name := range rooms {
		fixed.Rooms.Add(libraryRoom(name))
	}
	ad.PersistSession(&fixed)
}

// appRoomPrefix starts the library's name of every application room. It
// holds a character no socket id has (ids are base64url), so the library's
// rooms fall in two disjoint sets: each socket's own room, named by its id,
// which is how socket.io delivers to one socket (and, with recovery, keeps
// what a suspended socket missed), and the rooms a Handler joins. Without
// it a client that got itself into a room named like another socket's id
// would receive every event sent to that socket, including ids of sockets
// that connect later.
const appRoomPrefix = "r:"

// libraryRoom is the library's room that carries the application room
// name.
func libraryRoom(name string) socket.Room { return socket.Room(appRoomPrefix + name) }
