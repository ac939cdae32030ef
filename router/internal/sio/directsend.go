package sio

// The direct path for outgoing events to one socket on the server's
// WebSocket transport.
//
// Why: the CPU profile of the relay at a fixed 4,000 msgs/s (bench/README.md,
// issue 14) put about 7 µs of every relayed message, a seventh of the
// router's CPU per message, in v3.0.6's emit path outside the write itself:
// Socket.Emit copies its arguments into a packet, Client.WriteToEngine
// clones the encoded buffer, the engine socket wraps it in another packet
// with fresh options, and sendPacket and flush emit "packetCreate", "flush"
// and "drain" through event emitters that copy their listener lists, twice
// each (socket and server). For an event to a socket of the main namespace
// on a WebSocket the server accepted as such, none of that changes what goes
// on the wire: the frame is "4" + the socket.io packet, written by
// wsTransport.write like any other.
//
// The direct path is taken only when the library's would do nothing else:
//   - no acknowledgement callback, no reserved event name, no binary data
//     (the encoder writes JSON text only; Ack values fall back);
//   - connection state recovery off, since the library then keeps every
//     emitted packet for a replay;
//   - the connection is open, its guard has not tripped (the slow-consumer
//     caps apply as on the library's path: connGuard.checkOutgoing), and its transport is
//     a wsTransport that did not come from a polling upgrade: the engine
//     keeps packets in its write buffer only while a transport is not
//     writable, and wsTransport always is, so the buffer is empty whenever
//     no flush is running; a flush on another goroutine is an emit concurrent
//     with this one, whose order no client can rely on. Emits from one
//     goroutine keep their order whichever path each takes, because both
//     write before returning.
// Everything else (other namespaces, polling, upgraded sessions, broadcasts)
// keeps the library's path.

import (
	"sync/atomic"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// emitDirect writes event to s's WebSocket itself and reports true, or
// reports false having done nothing when the library must send it.
func (s *Socket) emitDirect(event string, args []any) bool {
	if s.srv.cfg.Recovery > 0 || socket.SOCKET_RESERVED_EVENTS.Has(event) {
		return false
	}
	if n := len(args); n > 0 {
		if _, ack := args[n-1].(socket.Ack); ack {
			return false
		}
	}
	g := s.guard.Load()
	if g == nil || g.conn != s.ls.Conn() {
		if g = s.srv.guardOf(s.ls); g == nil {
			return false
		}
		s.guard.Store(g)
	}
	w, ok := g.conn.Transport().(*wsTransport)
	if !ok || w.upgraded || g.tripped.Load() || g.conn.ReadyState() != "open" || !s.ls.Connected() || s.ls.Nsp().Name() != "/" {
		return false
	}
	buf := getFrameBuf()
	// The packet is written after room for the longest frame header, then
	// moved up to the header its length needs: one pass over the data to
	// encode it, one short copy.
	b := append((*buf)[:0], make([]byte, frameHeaderMax)...)
	b = append(b, '4', byte(parser.EVENT)+'0', '[')
	b = appendJSONString(b, event)
	for _, a := range args {
		var ok bool
		b = append(b, ',')
		if b, ok = appendJSON(b, a); !ok {
			*buf = b
			putFrameBuf(buf)
			return false // the library leaves such data out; let it
		}
	}
	b = append(b, ']')
	n := len(b) - frameHeaderMax
	if n > types.MaxPayloadSize {
		*buf = b
		putFrameBuf(buf)
		return false
	}
	var hb [frameHeaderMax]byte
	h := appendFrameHeader(hb[:0], opText, n)
	copy(b[len(h):], b[frameHeaderMax:])
	copy(b, h)
	*buf = b[:len(h)+n]
	// What onFlush counts, before the write as it does, for a packet on
	// the library's path (its payload is the socket.io packet, without the
	// engine's type byte); then the slow-consumer caps as onPacketCreate
	// applies them.
	s.srv.stats.packetsSent.Add(1)
	s.srv.stats.bytesSent.Add(uint64(n - 1))
	w.write(buf, 1, false)
	g.checkOutgoing()
	directSends.Add(1)
	return true
}

// frameHeaderMax is the longest header appendFrameHeader writes.
const frameHeaderMax = 10

// directSends counts events sent on the direct path, for the tests that
// check it is taken.
var directSends atomic.Int64
