package router

// Connection state recovery (server.recovery): a socket whose transport
// drops keeps its id, rooms, socket data and socket-scoped store entries
// for a while, so a client that reconnects within the window carries on as
// the same peer instead of leaving and rejoining every room.
//
// The socket.io server does half of it. With Recovery set, it keeps a
// session (id, rooms) when a socket closes for a recoverable reason
// (sio.Recoverable), keeps every packet sent to it for the window, and when
// the client's CONNECT carries its private id and the offset of the last
// packet it saw, builds a socket with the same id that rejoins those rooms,
// is sent the packets it missed and is handed to Recover. The router keeps its own
// state (rooms in join order, socket data, stores), so it must neither drop
// that state at the disconnect nor treat the recovered socket as new:
//
//   - disconnected: a recoverable drop suspends the conn instead of cleaning
//     it up. It stays registered and in its rooms, so room emits and relays
//     to it go on through the library, which keeps them for the replay. No
//     #rtcio:peer-left, no disconnecting rules, no presence.
//   - onRecovered: the recovered socket is attached to the suspended conn
//     (c.s replaced under state.mu); the connect rules do not run again.
//   - expire: the window passed without the client: the normal cleanup,
//     once. Drain ends every suspension at once (a draining server refuses
//     the handshake a recovery needs).
//
// Every transition happens under state.mu and is checked against the socket
// or the suspension it was started for, so a recovery racing the timer ends
// up either fully recovered or fully cleaned up.

import (
	"time"

	"github.com/rtcio/rtcio-router/router/internal/sio"
)

// recoveryGrace is how much longer than the library the router keeps a
// suspended conn. The library checks the window when the client's CONNECT
// arrives; the router hears of the recovered socket a little later, in its
// connection handler (after the middlewares), and a client the library
// admitted at the last moment must still find its state.
const recoveryGrace = time.Second

// recoveryState is the router's side of server.recovery.
type recoveryState struct {
	window time.Duration // server.recovery, fixed at start-up; 0 is off
	// suspended counts conns with a suspension, for /health. Guarded by
	// state.mu.
	suspended int
}

// suspension is a conn whose transport is gone while its client may still
// recover the session.
type suspension struct {
	// reason is the disconnect reason, given to the disconnecting rules if
	// the client never comes back.
	reason string
	timer  *time.Timer
}

// disconnected handles the server's report that s, a socket of c, closed.
// It runs on its own goroutine (see socketHandler.Disconnect).
func (r *Router) disconnected(c *conn, s *sio.Socket, reason string) {
	defer r.recoverEvent(c)
	st := r.st
	st.mu.Lock()
	defer st.mu.Unlock()
	switch {
	case !c.live, c.s != s, c.suspended != nil:
		// Never registered (a ghost), already cleaned up, the session has
		// moved on to a recovered socket, or already suspended for s.
		return
	case r.shared():
		r.disconnectedShared(c, reason) // recovery_cluster.go
	case r.suspendable(reason):
		r.suspend(c, reason)
	default:
		r.cleanupLocked(c, reason)
	}
}

// suspendable reports whether a disconnect for reason keeps the session.
// It follows the library, which persists a session only for these reasons:
// a client that says goodbye ("client namespace disconnect") or that the
// server hangs up on ("server namespace disconnect") is gone for good. While
// draining, new handshakes, recoveries among them, are refused, so nothing
// is kept; in a cluster the session is kept in Redis, for the client to
// recover on another node (recovery_cluster.go).
func (r *Router) suspendable(reason string) bool {
	return r.rec.window > 0 && (r.cl != nil || !r.draining.Load()) && sio.Recoverable(reason)
}

// suspend keeps c for the client to recover it. Callers hold state.mu.
func (r *Router) suspend(c *conn, reason string) {
	// Usually set already by the disconnecting listener, but not when the
	// disconnect had no listener yet (see onRecovered). onRecovered reads
	// it as "the transport is gone".
	c.closing.Store(true)
	sp := &suspension{reason: reason}
	// The callback takes state.mu, which the caller holds, so it cannot
	// run before sp is in place.
	sp.timer = time.AfterFunc(r.rec.window+recoveryGrace, func() { r.expire(c, sp) })
	c.suspended = sp
	r.rec.suspended++
	r.log.Debug("socket suspended for recovery", "socket_id", c.id, "reason", reason, "rooms", len(c.rooms), "window", r.rec.window)
}

// unsuspend ends c's suspension, if any, without cleaning it up. Callers
// hold state.mu.
func (r *Router) unsuspend(c *conn) {
	if c.suspended == nil {
		return
	}
	c.suspended.timer.Stop()
	c.suspended = nil
	r.rec.suspended--
}

// expire cleans up c when its window has passed. sp is the suspension the
// timer was started for: if c was recovered (and perhaps suspended again)
// in the meantime, this timer has nothing left to do.
func (r *Router) expire(c *conn, sp *suspension) {
	defer r.recoverEvent(c)
	r.st.mu.Lock()
	defer r.st.mu.Unlock()
	if c.suspended != sp {
		return
	}
	r.log.Debug("recovery window passed", "socket_id", c.id)
	r.cleanupLocked(c, sp.reason)
}

// endSuspensions cleans up every suspended conn now, for Drain: their
// clients can no longer come back here, so their peers should learn it at
// once rather than when the timers fire.
func (r *Router) endSuspensions() {
	r.st.mu.Lock()
	defer r.st.mu.Unlock()
	r.st.each(func(c *conn) { // cleanup forgets c: allowed while visiting
		if c.suspended != nil {
			func() {
				defer r.recoverEvent(c)
				r.cleanupLocked(c, c.suspended.reason)
			}()
		}
	})
}

// keepsSession reports whether the router still holds the state of socket
// id, so the library may recover its session (roomAdapter.RestoreSession).
// The library keeps a session for the whole window whatever became of the
// socket since; recovering one the router has cleaned up (a window that
// passed, a goodbye that was reported as a transport close, a drain) would
// tell the client it is still in rooms it has left.
func (r *Router) keepsSession(id string) bool {
	r.st.mu.RLock()
	defer r.st.mu.RUnlock()
	c := r.st.socket(id)
	return c != nil && c.live
}

// onRecovered attaches a socket the server recovered to the suspended conn
// with its id (socketHandler.Recover); the socket's events queue behind
// it. The client's events that were in flight when the old transport
// broke are lost; those it emitted while disconnected it buffers and sends
// now, and they run as usual. It reports whether the session goes on.
func (r *Router) onRecovered(s *sio.Socket) bool {
	if r.shared() {
		return r.recoverShared(s) // recovery_cluster.go
	}
	id := s.ID()
	c, open := r.attach(id, s)
	switch {
	case open != nil:
		// The client came back before the server noticed its old transport
		// die (a half-open TCP connection). Both transports are closed:
		// the old one's disconnect suspends the session, and the client,
		// which sees a transport close, reconnects and recovers it.
		r.log.Debug("recovery while the old transport is open; closing both", "socket_id", id)
		r.st.mu.RLock()
		rooms := r.st.roomsOf(id)
		r.st.mu.RUnlock()
		r.tr.CloseDuplicate(open, s, rooms)
		return false
	case c == nil:
		// The router gave the session up between keepsSession and now (its
		// window passed at that very moment: recoveryGrace makes this all
		// but impossible). The client believes it is in its rooms; tell it
		// plainly that it is not: it sees "io server disconnect".
		r.log.Debug("recovered session no longer known; disconnecting", "socket_id", id)
		s.Disconnect()
		return false
	}
	r.log.Debug("socket recovered", "socket_id", id)
	r.m.recovered()
	s.Bind(c)
	return true
}

// attach gives the session id to s, under state.mu: it ends the suspension
// and returns the conn. It returns no conn if the router no longer keeps
// the session, and the socket that still holds it if that socket's
// transport has not been reported gone yet.
func (r *Router) attach(id string, s *sio.Socket) (c *conn, open *sio.Socket) {
	st := r.st
	st.mu.Lock()
	defer st.mu.Unlock()
	c = st.socket(id)
	switch {
	case c == nil || !c.live:
		return nil, nil
	case !c.closing.Load():
		return nil, c.s
	}
	r.unsuspend(c)
	c.s = s
	c.closing.Store(false)
	// The router's rooms are authoritative; the server restored the rooms
	// of the session it kept, which agree unless a close raced it.
	// Joining again is idempotent and makes sure room emits reach s.
	for _, name := range c.rooms {
		st.wire.join(c, name)
	}
	return c, nil
}
