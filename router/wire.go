package router

import (
	"github.com/zishang520/socket.io/servers/socket/v3"
)

// wire is where the effects of rules leave the router: deliveries and room
// membership on the transport. socketWire speaks socket.io; a recorder can
// capture the same effects without a network, for config tests and for
// benchmarks of the rule engine alone.
type wire interface {
	// send delivers event with args to every socket in the application
	// rooms named, each once, except the socket except ("" for none). A
	// room name is never a socket: see libraryRoom.
	send(rooms []string, except string, event string, args []any) error
	// sendTo delivers event to one socket. It skips the broadcast
	// machinery (room sets, a broadcast operator, the adapter), which was
	// most of the allocation of a relayed envelope.
	sendTo(c *conn, event string, args []any) error
	join(c *conn, room string)
	leave(c *conn, room string)
	// hangUp closes c's connection. It may run the disconnect path, so
	// callers must not hold state.mu.
	hangUp(c *conn)
}

// socketWire is the wire of a real server.
type socketWire struct{ io *socket.Server }

var _ wire = socketWire{}

func (w socketWire) send(rooms []string, except string, event string, args []any) error {
	to := make([]socket.Room, len(rooms))
	for i, r := range rooms {
		to[i] = libraryRoom(r)
	}
	op := w.io.To(to...)
	if except != "" {
		op = op.Except(socket.Room(except))
	}
	return op.Emit(event, args...)
}

// sendTo emits on the socket itself. With connection state recovery on, the
// library routes this through the adapter too, so an envelope for a
// suspended socket is kept for its replay.
func (socketWire) sendTo(c *conn, event string, args []any) error { return c.s.Emit(event, args...) }

func (socketWire) join(c *conn, room string)  { c.s.Join(libraryRoom(room)) }
func (socketWire) leave(c *conn, room string) { c.s.Leave(libraryRoom(room)) }

// appRoomPrefix starts the library's name of every application room. It
// holds a character no socket id has (ids are base64url), so the library's
// rooms fall in two disjoint sets: each socket's own room, named by its id,
// which is how socket.io delivers to one socket (and, with connection state
// recovery, keeps what a suspended socket missed), and the rooms rules join.
// Without it a client that joined a room named like another socket's id,
// "join-room" {roomId: "<B's id>"}, sat in B's own room and received B's
// relayed SDP and every event sent to B, for every config, including ids of
// sockets that connect later.
const appRoomPrefix = "r:"

// libraryRoom is the socket.io room that carries the application room name.
func libraryRoom(name string) socket.Room { return socket.Room(appRoomPrefix + name) }

// hangUp sends a DISCONNECT packet before closing, so the client sees "io
// server disconnect" and does not reconnect on its own: a socket a rule or a
// rate limit threw out should stay out until its application decides.
func (socketWire) hangUp(c *conn) { c.s.Disconnect(false) }
