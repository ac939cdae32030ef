package router

import (
	"fmt"
	"net/url"
	"runtime/debug"
	"strings"

	"github.com/rtcio/rtcio-router/router/internal/sio"
	"github.com/rtcio/rtcio-router/rules"
)

// socketHandler is the router's side of the socket.io server
// (sio.Handler): handshakes go through the auth: section, sockets become
// conns, events go to the relay or the rules, disconnects to cleanup or,
// with recovery on, to a suspension.
type socketHandler struct{ r *Router }

var _ sio.Handler = socketHandler{}

// Admit applies the auth: section (auth.go).
func (h socketHandler) Admit(s *sio.Socket) (any, error) {
	claims, ref := h.r.authenticate(h.r.rules.Load(), s.ID(), s.Auth(), flattenQuery(s.Query()))
	h.r.m.admitted(ref != nil)
	if ref != nil {
		h.r.log.Info("connection refused", "socket_id", s.ID(), "reason", ref.Message)
		return nil, ref
	}
	if claims == nil {
		return nil, nil
	}
	return verifiedClaims(claims), nil
}

// Connect registers a new socket and runs the connect rules. The socket's
// events wait until it returns.
func (h socketHandler) Connect(s *sio.Socket) {
	c := &conn{s: s, id: s.ID(), data: map[string]any{}, auth: s.Auth(), query: flattenQuery(s.Query())}
	if h.r.shared() {
		c.pid = s.PrivateID() // kept in Redis with the socket (recovery_cluster.go)
	}
	if claims, ok := s.Admission().(verifiedClaims); ok {
		c.claims = claims
	}
	s.Bind(c)
	h.r.m.connected()
	h.r.connected(c)
	if pid, _ := s.Auth()["pid"].(string); pid != "" && h.r.shared() {
		// A client back without its session: it gave the old one up.
		h.r.endAbandoned(pid) // recovery_cluster.go
	}
}

// Recover attaches a recovered socket to its suspended conn (recovery.go).
func (h socketHandler) Recover(s *sio.Socket) bool { return h.r.onRecovered(s) }

// Event handles one event of s's conn.
func (h socketHandler) Event(s *sio.Socket, ev sio.Event) {
	if c, ok := s.Bound().(*conn); ok {
		h.r.handle(c, &ev)
	}
}

// Disconnect hands s's end to recovery or cleanup, on a goroutine of its
// own: cleanup takes the state lock, and the server may report a
// disconnect from inside a write the router makes while holding it.
func (h socketHandler) Disconnect(s *sio.Socket, reason string) {
	c, ok := s.Bound().(*conn)
	if !ok {
		return // Recover gave the session up before binding it
	}
	c.closing.Store(true)
	h.r.m.disconnect(reason)
	go h.r.disconnected(c, s, reason)
}

// KeepSession: see Router.keepsSession.
func (h socketHandler) KeepSession(id string) bool { return h.r.keepsSession(id) }

// connected registers c and runs the connect rules. The socket.io path
// and Local both come through here.
func (r *Router) connected(c *conn) {
	st := r.st
	registered, hangUp := func() (bool, bool) {
		st.mu.Lock()
		defer st.mu.Unlock() // a panic in a rule must not leave the server locked
		if c.closing.Load() {
			return false, false
		}
		st.add(c)
		st.peak = max(st.peak, st.count())
		r.adminConnected(c)
		return true, r.runRules(r.rules.Load(), c, rules.HookConnect, nil, nil, nil)
	}()
	if !registered {
		return
	}
	r.log.Debug("socket connected", "socket_id", c.id)
	if hangUp {
		st.wire.hangUp(c)
	}
}

// handle applies one client event: the hard-wired relay, or the rules for
// it under one snapshot of the rule set. ev is valid until handle returns.
func (r *Router) handle(c *conn, ev *sio.Event) {
	defer r.recoverEvent(c)
	if c.closing.Load() {
		return
	}
	set := r.rules.Load() // one snapshot for the whole event
	r.m.event(set, ev.Name)
	switch name := ev.Name; {
	case name == rules.EventMessage:
		if r.admit(c, set, ev) {
			r.relay(c, set, ev)
		}
		return
	case strings.HasPrefix(name, rules.ProtocolPrefix), name == rules.HookConnect, name == rules.HookDisconnecting:
		r.log.Debug("reserved event dropped", "event", name, "socket_id", c.id)
		return
	}
	if len(set.For(ev.Name)) == 0 {
		r.log.Debug("no rule for event", "event", ev.Name, "socket_id", c.id)
		return
	}
	if !r.admit(c, set, ev) {
		return
	}
	hangUp := func() bool {
		r.st.mu.Lock()
		// Deferred: a panic in a rule is recovered (recoverEvent) and must
		// not leave every other socket waiting on the lock.
		defer r.st.mu.Unlock()
		return c.live && r.runEvent(set, c, ev)
	}()
	if hangUp {
		// Closing runs the disconnect path, which takes the state lock.
		r.st.wire.hangUp(c)
	}
}

func (r *Router) recoverEvent(c *conn) {
	if v := recover(); v != nil {
		r.log.Error("event handler panicked; event dropped", "socket_id", c.id, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	}
}

// cleanup runs once per socket after the library reports its disconnect:
// #rtcio:peer-left to each of its rooms, then the disconnecting rules, then
// it leaves every room and its socket-scoped state is dropped.
func (r *Router) cleanup(c *conn, reason string) {
	defer r.recoverEvent(c)
	r.st.mu.Lock()
	defer r.st.mu.Unlock()
	r.cleanupLocked(c, reason)
}

// cleanupLocked is cleanup for callers that hold state.mu. It also ends a
// suspension of c, so its recovery timer finds nothing left to do.
func (r *Router) cleanupLocked(c *conn, reason string) {
	st := r.st
	if !c.live {
		return
	}
	r.unsuspend(c)
	st.beginEvent()
	st.leaving(c)
	r.peerLeft(c)
	r.log.Debug("socket disconnected", "socket_id", c.id, "reason", reason, "rooms", len(c.rooms))
	r.runRules(r.rules.Load(), c, rules.HookDisconnecting, reason, []any{reason}, nil)
	st.forget(c)
	r.adminDisconnected(c, reason)
}

// peerLeft sends #rtcio:peer-left {id} to each room of c, one room at a
// time in the order c joined them, as rtc.io-server does from its
// disconnecting handler: a peer that shares two rooms with c hears it
// twice, exactly like the user-disconnected the built-in rules send per
// room. (One send to all the rooms at once would reach each peer once: the
// library delivers a multi-room broadcast to each socket once.) Rooms where
// c is alone are skipped: nobody would hear it. Callers hold state.mu.
func (r *Router) peerLeft(c *conn) {
	if len(c.rooms) == 0 {
		return
	}
	args := []any{map[string]any{"id": c.id}} // never changed: shared by the sends
	for _, name := range c.rooms {
		if r.st.roomSize(name) < 2 {
			continue
		}
		if err := r.st.wire.send([]string{name}, c.id, rules.EventPeerLeft, args); err != nil {
			r.log.Warn("peer-left not sent", "socket_id", c.id, "room", name, "err", err)
		}
	}
}

// flattenQuery keeps the first value of each query parameter, which is what
// rules almost always want.
func flattenQuery(q url.Values) map[string]any {
	out := make(map[string]any, len(q))
	for k, v := range q {
		if len(v) > 0 {
			out[k] = v[0]
		}
	}
	return out
}
