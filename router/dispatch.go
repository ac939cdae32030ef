package router

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/rtcio/rtcio-router/rules"
	"github.com/zishang520/socket.io/servers/socket/v3"
)

// onConnection runs in the new socket's task queue, so the socket's first
// events queue behind it and cannot miss the handlers installed here.
func (r *Router) onConnection(s *socket.Socket) {
	if s.Recovered() {
		// The same session on a new transport (recovery.go): no new conn
		// and no connect rules.
		r.onRecovered(s)
		return
	}
	c := &conn{s: s, id: string(s.Id()), data: map[string]any{}}
	if hs := s.Handshake(); hs != nil {
		c.auth = hs.Auth
		c.query = flattenQuery(hs.Query)
	}
	if claims, ok := s.Data().(verifiedClaims); ok {
		c.claims = claims
	}
	r.listen(c, s)
	// Only now, with the disconnect listener in place, check whether the
	// connection is already gone (a client may send CONNECT and close at
	// once): checking first would leave a window in which a disconnect is
	// missed and the socket stays registered for ever.
	if r.tr.dropIfGhost(s) {
		c.closing.Store(true)
		return
	}
	r.connected(c)
}

// listen routes s's events and its disconnect to c.
func (r *Router) listen(c *conn, s *socket.Socket) {
	r.tr.watch(s)
	// A socket middleware sees each event in the socket's own order, before
	// the library's listener dispatch; not calling next skips that
	// dispatch, which the router has no use for.
	s.Use(func(args []any, _ func(error)) { r.onEvent(c, s, args) })
	// Events read by the router's WebSocket transport come straight here,
	// without the library's task queue (transport_direct.go).
	r.tr.route(s, func(name string, args []any, text []byte, reply func(any)) {
		r.handleSent(c, name, args, text, reply)
	})
	s.On("disconnecting", func(a ...any) {
		c.closing.Store(true)
		reason := ""
		if len(a) > 0 {
			reason = fmt.Sprint(a[0])
		}
		if r.tr.saidGoodbye(s) {
			// The client's DISCONNECT lost the race with its transport
			// close; it left on purpose and must not be kept for recovery.
			reason = reasonGoodbye
		}
		// Cleanup takes the state lock. The library may report a disconnect
		// from inside a write the router makes while holding it, so the
		// cleanup runs on its own goroutine rather than here.
		go r.disconnected(c, s, reason)
	})
}

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

// onEvent takes one event from socket.io. args is [name, payload..., ack?].
// s is the socket the event came in on: c.s changes when a session is
// recovered, while an event of the old socket may still be running.
func (r *Router) onEvent(c *conn, s *socket.Socket, args []any) {
	defer r.tr.eventDone(s)
	if len(args) == 0 {
		return
	}
	text := textOf(args) // the JSON the decoder kept for the event
	name, ok := args[0].(string)
	if !ok {
		return
	}
	args = args[1:]
	var reply func(any)
	if n := len(args); n > 0 {
		if ack, ok := args[n-1].(socket.Ack); ok {
			args = args[:n-1]
			reply = func(v any) { ack([]any{v}, nil) }
		}
	}
	r.handleSent(c, name, args, text, reply)
}

// handle applies one client event: the hard-wired relay, or the rules for
// it under one snapshot of the rule set. reply answers the client's ack
// callback; nil when it sent none.
func (r *Router) handle(c *conn, name string, args []any, reply func(any)) {
	r.handleSent(c, name, args, nil, reply)
}

// handleSent is handle for an event read off the wire: text is the JSON it
// came as, `["name",arg,...]`, valid until it returns; emits without a
// payload forward the arguments as written there (forward.args).
func (r *Router) handleSent(c *conn, name string, args []any, text []byte, reply func(any)) {
	defer r.recoverEvent(c)
	if c.closing.Load() {
		return
	}
	set := r.rules.Load() // one snapshot for the whole event
	var data any
	if len(args) > 0 {
		data = args[0]
	}
	switch {
	case name == rules.EventMessage:
		if r.admit(c, set, name, data, args, reply) {
			r.relay(c, set, args)
		}
		return
	case strings.HasPrefix(name, rules.ProtocolPrefix), name == rules.HookConnect, name == rules.HookDisconnecting:
		r.log.Debug("reserved event dropped", "event", name, "socket_id", c.id)
		return
	}
	if len(set.For(name)) == 0 {
		r.log.Debug("no rule for event", "event", name, "socket_id", c.id)
		return
	}
	if !r.admit(c, set, name, data, args, reply) {
		return
	}
	hangUp := func() bool {
		r.st.mu.Lock()
		// Deferred: a panic in a rule is recovered (recoverEvent) and must
		// not leave every other socket waiting on the lock.
		defer r.st.mu.Unlock()
		return c.live && r.runEvent(set, c, name, data, args, text, reply)
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
	r.peerLeft(c)
	r.log.Debug("socket disconnected", "socket_id", c.id, "reason", reason, "rooms", len(c.rooms))
	r.runRules(r.rules.Load(), c, rules.HookDisconnecting, reason, []any{reason}, nil)
	st.forget(c)
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
func flattenQuery(q map[string]any) map[string]any {
	out := make(map[string]any, len(q))
	for k, v := range q {
		switch v := v.(type) {
		case []string:
			if len(v) > 0 {
				out[k] = v[0]
			}
		case string:
			out[k] = v
		}
	}
	return out
}
