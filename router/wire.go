package router

import (
	"github.com/rtcio/rtcio-router/router/internal/sio"
)

// wire is where the effects of rules leave the router: deliveries and room
// membership on the socket.io server. socketWire speaks socket.io; a
// recorder can capture the same effects without a network, for config
// tests and for benchmarks of the rule engine alone.
type wire interface {
	// send delivers event with args to every socket in the rooms named,
	// each once, except the socket except ("" for none).
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
type socketWire struct{ io *sio.Server }

var _ wire = socketWire{}

func (w socketWire) send(rooms []string, except string, event string, args []any) error {
	return w.io.Broadcast(rooms, except, event, args...)
}

// sendTo emits on the socket itself. With connection state recovery on,
// an envelope for a suspended socket is kept for its replay.
func (socketWire) sendTo(c *conn, event string, args []any) error { return c.s.Emit(event, args...) }

func (socketWire) join(c *conn, room string)  { c.s.Join(room) }
func (socketWire) leave(c *conn, room string) { c.s.Leave(room) }

// hangUp sends a DISCONNECT packet before closing, so the client does not
// reconnect on its own: a socket a rule or a rate limit threw out should
// stay out until its application decides.
func (socketWire) hangUp(c *conn) { c.s.Disconnect() }
