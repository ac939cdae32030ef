package sio

// The direct path for inbound events on the server's WebSocket transport.
//
// Why: v3.0.6 runs every decoded packet as a closure on the socket's task
// queue (Client.ondecoded -> socket.Enqueue), which starts a goroutine each
// time the queue was idle, that is for nearly every event of a signaling
// client, and costs a scheduler hand-off on each message's path. An EVENT for
// the main namespace of a socket the Handler already knows needs none of
// that: the reader goroutine decodes it and calls the Handler itself, which
// keeps the per-connection order (one reader per connection) and lets TCP
// push back on a client that emits faster than its events are handled.
//
// Everything else keeps the library's path: other packet types and
// namespaces, polling, a connection whose CONNECT has not settled, packets the
// decoder refuses (the library then closes the connection, as before), and
// any event while earlier events still wait on the task queue, so that an
// event never overtakes one that arrived before it.

import (
	"sync/atomic"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/servers/socket/v3"
)

// directEvent handles one engine.io message (frame, without the engine's
// type byte) read by w, if it is an EVENT that may take the direct path. It
// reports false, having done nothing, when the library must handle it.
func (t *Server) directEvent(w *wsTransport, frame []byte) bool {
	if len(frame) == 0 || frame[0] != '0'+byte(parser.EVENT) || (len(frame) > 1 && frame[1] == '/') {
		return false
	}
	g := w.guard
	if g == nil {
		v, ok := t.guards.Load(w.Sid())
		if !ok {
			return false
		}
		g = v.(*connGuard)
		w.guard = g // one guard per session, for the transport's life
	}
	s := g.route.Load()
	if s == nil || g.unsettled.Load() != 0 || g.pending.Load() != 0 || g.tripped.Load() {
		return false
	}
	if g.conn.Transport() != transports.Transport(w) || g.conn.ReadyState() != "open" || !s.ls.Connected() || s.phase.Load() != phaseOpen {
		return false // an upgrade probe, or a connection on its way out
	}
	if _, bye := g.goodbye.Load("/"); bye {
		return false
	}
	// The envelope of a pass-through event reads frame in place, like
	// text (below), unless connection state recovery is on: the library
	// then keeps every packet emitted to a socket for a replay, after
	// frame is reused. Without it everything that sends the object
	// (emitDirect, the library's encoder, the cluster's publish) encodes
	// it before returning.
	p, text, obj, err := decodeFrame(frame, t.passThrough, t.cfg.Recovery == 0)
	if err == nil {
		err = checkClientPacket(p)
	}
	if err != nil {
		return false // refused again by wireDecoder, which closes the connection
	}
	ev := eventOf(p, text, obj)
	if p.Id != nil {
		ev.Reply = ackSender(s.ls, *p.Id)
	}
	// text (and obj, without recovery) is part of frame, which stays
	// valid until this returns: the event is handled, and whatever it
	// sends is encoded or copied (Event.Verbatim, RawObject.Decode), before
	// then. A panic is contained by the reader
	// (wsTransport.deliverSafely), which closes the connection.
	t.h.Event(s, ev)
	return true
}

// eventOf is the Event of a decoded EVENT packet read in place (decodeFrame
// with borrow): text and obj are parts of the frame.
func eventOf(p *parser.Packet, text []byte, obj *RawObject) Event {
	data := p.Data.([]any) // decodeFrame: an EVENT has a name first
	ev := Event{Name: data[0].(string), Args: data[1:], Object: obj, text: text}
	if obj != nil {
		ev.Args, ev.text = nil, nil
	}
	return ev
}

// ackSender answers a client's ack callback once, as the library's own
// ack function does, if the socket is still connected.
func ackSender(s *socket.Socket, id uint64) func(any) {
	var sent atomic.Bool
	return func(v any) {
		if !sent.CompareAndSwap(false, true) || !s.Connected() {
			return
		}
		p := &parser.Packet{Type: parser.ACK, Id: &id, Nsp: s.Nsp().Name(), Data: []any{v}}
		s.Client().WriteToEngine(wireEncoder{}.Encode(p), &socket.WriteOptions{})
	}
}
