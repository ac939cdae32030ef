package router

// The router's side of the socket.io Admin UI (admin: in rtcio.yaml; the
// protocol is router/internal/admin). The UI lists this node's sockets and
// their rooms and hears of every change; its commands act on the router's
// state, never on the library's alone:
//
//   - join/leave go through the state registry like a rule's join:/leave:
//     action with no rule around it: join order, room-scoped stores and the
//     transport's rooms follow, server.max_room_name and
//     server.max_rooms_per_socket apply, and a leave sends #rtcio:peer-left
//     to the members that remain, as the leave: action does. No rule runs:
//     the room's peers are not told of a join (no user-connected, no
//     #rtcio:init-offer).
//   - _disconnect takes the normal path: without close, a DISCONNECT packet
//     (the client stays away, io server disconnect); with close, the
//     connection is closed (the client reconnects, recovering its session
//     when server.recovery allows). Either way peer-left and the
//     disconnecting rules run. A socket suspended for recovery is cleaned up
//     at once.
//   - emit sends the event to the sockets as they are.

import (
	"slices"

	"github.com/rtcio/rtcio-router/router/internal/admin"
	"github.com/rtcio/rtcio-router/router/internal/sio"
	"github.com/rtcio/rtcio-router/rules"
)

// startAdmin serves the /admin namespace when admin: enables it. Called by
// New once the transport and the wire exist.
func (r *Router) startAdmin(set *rules.Set) error {
	a := set.Admin
	if !a.Enabled {
		return nil
	}
	r.admin = admin.New(admin.Config{
		NoAuth:       a.Auth == rules.AdminAuthNone,
		Username:     a.Username,
		PasswordHash: a.PasswordHash,
		ReadOnly:     a.ReadOnly,
		ServerID:     a.ServerID,
	}, adminRuntime{r}, r.log.With("component", "admin"))
	if err := r.tr.Namespace(admin.Namespace, r.admin); err != nil {
		return err
	}
	r.st.wire = adminWire{wire: r.st.wire, hub: r.admin}
	r.admin.Start()
	r.log.Info("admin UI enabled", "namespace", admin.Namespace, "ui", a.UI, "path", admin.UIPath, "readonly", a.ReadOnly)
	if a.UI {
		if _, err := admin.UIDir(); err != nil {
			r.log.Warn("admin UI: " + err.Error())
		}
	}
	if a.Auth == rules.AdminAuthNone {
		r.log.Warn("admin UI without authentication (admin.auth: none): anyone who reaches the port can disconnect sockets; use it on a local machine only")
	}
	return nil
}

// adminConnected reports c, just registered, to the UIs. Callers hold
// state.mu.
func (r *Router) adminConnected(c *conn) {
	if r.admin == nil {
		return
	}
	r.admin.SocketConnected(adminSocket(c))
	if c.s != nil {
		hub, s, id := r.admin, c.s, c.id
		s.OnUpgrade(func(transport string) { hub.SocketUpdated(id, transport) })
	}
}

// adminDisconnected reports c's end, after it left its rooms. Callers hold
// state.mu.
func (r *Router) adminDisconnected(c *conn, reason string) {
	if r.admin != nil {
		r.admin.SocketDisconnected(c.id, reason)
	}
}

// adminSocket describes c for the UI. Callers hold state.mu.
func adminSocket(c *conn) admin.Socket {
	out := admin.Socket{ID: c.id, Data: c.data, Rooms: slices.Clone(c.rooms)}
	if c.s != nil {
		out.ClientID = c.s.ClientID()
		out.Transport = c.s.Transport()
		out.Handshake = c.s.Handshake()
	}
	if c.suspended != nil {
		out.Transport = "" // gone; kept for recovery
	}
	return out
}

// adminWire reports the transport's membership changes, which are exactly
// the registry's (state.join, leave and forget), to the UIs.
type adminWire struct {
	wire
	hub *admin.Hub
}

func (w adminWire) join(c *conn, room string) {
	w.wire.join(c, room)
	w.hub.RoomJoined(room, c.id)
}

func (w adminWire) leave(c *conn, room string) {
	w.wire.leave(c, room)
	w.hub.RoomLeft(room, c.id)
}

// adminRuntime answers the hub (admin.Runtime) from the router's state.
type adminRuntime struct{ r *Router }

var _ admin.Runtime = adminRuntime{}

func (a adminRuntime) Snapshot(fn func([]admin.Socket)) {
	st := a.r.st
	st.mu.RLock()
	defer st.mu.RUnlock()
	list := make([]admin.Socket, 0, st.count())
	st.each(func(c *conn) { list = append(list, adminSocket(c)) })
	slices.SortFunc(list, func(x, y admin.Socket) int { return x.Handshake.Time.Compare(y.Handshake.Time) })
	fn(list)
}

func (a adminRuntime) Count() int { return a.r.Sockets() }

func (a adminRuntime) Clients() (int, int) { return a.r.tr.Clients() }

// targets are this node's sockets that filter selects (see admin.Runtime).
// Callers hold state.mu.
func (a adminRuntime) targets(filter string) []*conn {
	st := a.r.st
	if filter == "" {
		var out []*conn
		st.each(func(c *conn) { out = append(out, c) })
		return out
	}
	if c := st.socket(filter); c != nil {
		return []*conn{c}
	}
	var out []*conn
	for _, id := range st.members(filter) {
		if c := st.socket(id); c != nil {
			out = append(out, c)
		}
	}
	return out
}

func (a adminRuntime) Join(filter, room string) {
	r, st := a.r, a.r.st
	st.mu.Lock()
	defer st.mu.Unlock()
	set := r.Rules()
	for _, c := range a.targets(filter) {
		x := run{r: r, set: set, c: c}
		if why := x.joinRefused(room); why != "" {
			r.log.Warn("admin UI join refused", "socket_id", c.id, "room", room, "reason", why)
			continue
		}
		st.beginEvent()
		st.join(c, room)
	}
}

func (a adminRuntime) Leave(filter, room string) {
	r, st := a.r, a.r.st
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, c := range a.targets(filter) {
		if !slices.Contains(c.rooms, room) {
			continue
		}
		st.beginEvent()
		if remaining := st.leave(c, room); len(remaining) > 0 {
			if err := st.wire.send([]string{room}, c.id, rules.EventPeerLeft, []any{map[string]any{"id": c.id}}); err != nil {
				r.log.Warn("peer-left not sent", "socket_id", c.id, "room", room, "err", err)
			}
		}
	}
}

func (a adminRuntime) Disconnect(filter string, closeConn bool) {
	r, st := a.r, a.r.st
	var live []*sio.Socket
	func() {
		st.mu.Lock()
		defer st.mu.Unlock()
		for _, c := range a.targets(filter) {
			switch {
			case c.suspended != nil:
				r.cleanupLocked(c, "server namespace disconnect")
			case c.s != nil:
				live = append(live, c.s)
			}
		}
	}()
	// Outside the lock: closing runs the disconnect path, which takes it.
	// Both are what the transport's hangUp and a broken connection do.
	for _, s := range live {
		if closeConn {
			s.Close()
		} else {
			s.Disconnect()
		}
	}
}

func (a adminRuntime) Emit(filter, event string, args []any) {
	st := a.r.st
	var socks []*sio.Socket
	var ids []string
	func() {
		st.mu.RLock()
		defer st.mu.RUnlock()
		for _, c := range a.targets(filter) {
			if c.s != nil {
				socks = append(socks, c.s)
				ids = append(ids, c.id)
			}
		}
	}()
	if a.r.shared() {
		a.r.keepAndDeliver(ids, event, args) // with its offsets (recovery_cluster.go)
		return
	}
	for _, s := range socks {
		_ = s.Emit(event, args...)
	}
}
