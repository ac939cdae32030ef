package sio

import (
	"bytes"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// connGuard bounds the two unbounded queues v3.0.6 keeps per engine
// connection:
//
//   - inbound: every decoded packet becomes a closure on the socket's task
//     queue (pkg/queue: a plain growing slice, Client.ondecoded ->
//     socket.Enqueue). pending counts EVENT messages from the moment the
//     engine hands them over until the Handler's Event returned; above
//     MaxPending the connection is closed.
//   - outbound: engine socket.sendPacket appends to writeBuffer, which is
//     flushed only while the transport is writable. A WebSocket whose peer
//     stops reading blocks the transport's writer (no write deadline) and a
//     polling client that stops polling never makes it writable, so
//     writeBuffer grows with every emit. outPackets/outBytes count packets
//     between the engine's "packetCreate" and "flush" events (engine
//     socket.go sendPacket/flush); above MaxOutgoing/MaxOutgoingBytes the
//     connection is dropped. The batch already handed to a blocked writer is
//     not counted, but it was itself at most the cap when flushed, so the
//     backlog per client stays below twice the cap.
//
// One guard exists per engine connection (shared by all namespaces on it). It
// is attached on the engine "connection" event and forgotten on "close".
type connGuard struct {
	t    *Server
	conn engine.Socket

	socketID atomic.Pointer[string] // set when the socket connects, for logs only

	pending    atomic.Int64
	outPackets atomic.Int64
	outBytes   atomic.Int64
	tripped    atomic.Bool

	// Connect gate, see awaitConnect.
	unsettled  atomic.Int32
	connMu     sync.Mutex
	connecting map[string]chan struct{} // namespace -> closed when its CONNECT settled
	closed     chan struct{}            // closed with the engine connection
	closeOnce  sync.Once

	// goodbye holds the namespaces whose client sent DISCONNECT, see
	// saidGoodbye.
	goodbye sync.Map // namespace -> struct{}

	// route is the main namespace's socket once its listeners are in
	// place: its events may then take the direct path (direct.go).
	route atomic.Pointer[Socket]
}

// connectSettleTimeout bounds how long packets for a namespace wait for that
// namespace's CONNECT to settle (see awaitConnect). The reader is blocked
// meanwhile (pongs included), so it must stay well below PingTimeout; a
// middleware slower than this gets the library's behaviour (connection
// closed when the early packet arrives).
const connectSettleTimeout = 5 * time.Second

// maxConnectingNamespaces caps the gate's map; CONNECTs beyond it are not
// gated. Unknown namespaces are settled at once by the CONNECT_ERROR reply.
const maxConnectingNamespaces = 16

// onEngineConnection attaches a connGuard to a new engine connection.
func (t *Server) onEngineConnection(args ...any) {
	if len(args) == 0 {
		return
	}
	conn, ok := args[0].(engine.Socket)
	if !ok || conn == nil {
		return
	}
	g := &connGuard{t: t, conn: conn, closed: make(chan struct{})}
	id := conn.Id()
	t.guards.Store(id, g)
	_ = conn.On("packet", g.onPacket)
	_ = conn.On("packetCreate", g.onPacketCreate)
	_ = conn.On("flush", g.onFlush)
	_ = conn.Once("close", func(...any) { g.onClose(id) })
	if conn.ReadyState() == "closed" { // closed before "close" was subscribed
		g.onClose(id)
	}
}

// onClose forgets the guard and releases packets waiting on the gate.
func (g *connGuard) onClose(id string) {
	g.t.guards.CompareAndDelete(id, g)
	g.closeOnce.Do(func() { close(g.closed) })
}

// onSocketConnection runs as the first "connection" listener of every
// namespace. It settles the connect gate for the namespace once all
// "connection" listeners have returned: v3.0.6 emits "connection" from a task
// on the socket's queue (namespace._doConnect, after registering the socket
// with its Client), so a task enqueued here runs right after that one. If the
// socket is disconnected first (its queue then drops new tasks), "disconnect"
// settles instead.
func (t *Server) onSocketConnection(args ...any) {
	if len(args) == 0 {
		return
	}
	s, _ := args[0].(*socket.Socket)
	g := t.guardOf(s)
	if g == nil {
		return
	}
	nsp := s.Nsp().Name()
	_ = s.Once("disconnect", func(...any) { g.settle(nsp) })
	s.Enqueue(func() { g.settle(nsp) })
}

// onNewNamespace gives namespaces created after newTransport the same
// connect gate as "/".
func (t *Server) onNewNamespace(args ...any) {
	if len(args) == 0 {
		return
	}
	if nsp, ok := args[0].(socket.Namespace); ok && nsp != nil {
		_ = nsp.On("connection", t.onSocketConnection)
	}
}

// guardOf returns the guard of s's engine connection, or nil once it closed.
func (t *Server) guardOf(s *socket.Socket) *connGuard {
	if s == nil || s.Client() == nil || s.Conn() == nil {
		return nil
	}
	if g, ok := t.guards.Load(s.Conn().Id()); ok {
		return g.(*connGuard)
	}
	return nil
}

// saidGoodbye reports whether s's client sent a DISCONNECT packet. The
// library queues that packet on the socket's task queue, while a transport
// close closes the socket at once: a client that disconnects and closes its
// transport right after (socket.disconnect() does) is often reported as
// "transport close". Call it from the socket's "disconnecting" listener:
// the guard is forgotten once the engine connection's close completes.
func (t *Server) saidGoodbye(s *socket.Socket) bool {
	g := t.guardOf(s)
	if g == nil {
		return false
	}
	_, ok := g.goodbye.Load(s.Nsp().Name())
	return ok
}

// onPacket runs for every engine packet read from the client, on the reading
// goroutine, before the "data" event that feeds the socket.io decoder (and,
// through it, the socket's task queue). It peeks at the socket.io packet type
// without consuming the buffer.
//
// A socket.io EVENT is an engine MESSAGE whose text starts with '2'; every
// such message either reaches the Handler or is refused by wireDecoder,
// which closes the connection, so counting here equals counting decoded
// events, without having to link a decoder (which knows nothing of its
// connection) to a socket. Binary messages are refused by the decoder and not
// counted.
func (g *connGuard) onPacket(args ...any) {
	if len(args) == 0 {
		return
	}
	p, _ := args[0].(*packet.Packet)
	if p == nil || p.Type != packet.MESSAGE {
		return
	}
	sb, ok := p.Data.(*types.StringBuffer)
	if !ok || sb == nil || sb.Buffer == nil || sb.Len() == 0 {
		// Binary or empty: refused by the decoder, but only after a pending
		// CONNECT has settled, like everything else.
		g.awaitConnect("/")
		return
	}
	b := sb.Bytes() // the unread part; not consumed
	nsp := rawNamespace(b)
	if b[0] == '0' { // CONNECT; a second one waits for the first
		g.awaitConnect(nsp)
		g.beginConnect(nsp)
		return
	}
	g.awaitConnect(nsp)
	if b[0] == '1' {
		g.goodbye.Store(nsp, struct{}{})
	}
	if b[0] != '2' { // only EVENTs are counted
		return
	}
	if n := g.pending.Add(1); n > int64(g.t.cfg.MaxPending) {
		// Closing here, synchronously, is what the library itself does for a
		// decode error (Client.onerror on the same goroutine). It removes the
		// Client's "data" listener, so this packet is not enqueued either,
		// and the reader stops: at most MaxPending events ever queue.
		g.trip(false, "inbound event backlog over MaxPending", "pending", n, "max", g.t.cfg.MaxPending)
	}
}

// beginConnect opens the gate for nsp when its CONNECT packet arrives.
func (g *connGuard) beginConnect(nsp string) {
	if nsp == "" {
		return
	}
	g.connMu.Lock()
	defer g.connMu.Unlock()
	if g.connecting == nil {
		g.connecting = map[string]chan struct{}{}
	}
	if _, ok := g.connecting[nsp]; ok || len(g.connecting) >= maxConnectingNamespaces {
		return
	}
	g.connecting[nsp] = make(chan struct{})
	g.unsettled.Add(1)
}

// settle releases the packets waiting for nsp's CONNECT.
func (g *connGuard) settle(nsp string) {
	if g.unsettled.Load() == 0 {
		return
	}
	g.connMu.Lock()
	defer g.connMu.Unlock()
	if ch, ok := g.connecting[nsp]; ok {
		close(ch)
		delete(g.connecting, nsp)
		g.unsettled.Add(-1)
		if len(g.connecting) == 0 {
			// An emptied map keeps its buckets; an idle socket needs none.
			g.connecting = nil
		}
	}
}

// awaitConnect holds a packet for nsp until that namespace's CONNECT has
// settled, i.e. until its "connection" handlers have returned. Why: v3.0.6
// finishes a CONNECT on the socket's task queue (namespace.Add enqueues
// _doConnect), and _doConnect writes the CONNECT reply before it registers
// the socket with its Client. A client that emits as soon as it is connected
// (the JS and Go clients flush their buffers on "connect") can get its EVENT
// decoded in that window; Client.ondecoded then finds no socket for the
// namespace and closes the whole connection (measured: ~1 in 10 000
// connections; under -race 5 in 300 immediate and most pipelined emits).
// Holding packets until the handlers returned also means that no client
// packet, malformed ones included, can close the connection while the
// Handler's Connect is still running (only a transport-level
// close can). Settling happens after the namespace's "connection" handlers
// (onSocketConnection), on a CONNECT_ERROR reply, or when the connection
// closes; without a pending CONNECT this is one atomic load.
func (g *connGuard) awaitConnect(nsp string) {
	if g.unsettled.Load() == 0 {
		return
	}
	g.connMu.Lock()
	ch := g.connecting[nsp]
	g.connMu.Unlock()
	if ch == nil {
		return
	}
	timer := time.NewTimer(connectSettleTimeout)
	defer timer.Stop()
	select {
	case <-ch:
	case <-g.closed:
	case <-timer.C:
		g.t.log.Debug("socket.io CONNECT did not settle in time; releasing early packet",
			"namespace", nsp, "remote", g.conn.RemoteAddress())
	}
}

// rawNamespace extracts the namespace of an encoded socket.io packet
// ("2/chat,[..]" -> "/chat", "2[..]" -> "/"), or "" when it is malformed.
func rawNamespace(b []byte) string {
	if len(b) < 2 || b[1] != '/' {
		return "/"
	}
	rest := b[1:]
	if i := bytes.IndexByte(rest, ','); i >= 0 {
		rest = rest[:i]
	}
	if len(rest) > 512 { // the library's namespace length limit
		return ""
	}
	return string(rest)
}

// done decrements pending without going below zero.
func (g *connGuard) done() {
	for {
		n := g.pending.Load()
		if n <= 0 || g.pending.CompareAndSwap(n, n-1) {
			return
		}
	}
}

// onPacketCreate runs (on the sender's goroutine) for every packet queued to
// this connection: our emits, broadcasts from other sockets' handlers, pings.
func (g *connGuard) onPacketCreate(args ...any) {
	if len(args) == 0 {
		return
	}
	p, _ := args[0].(*packet.Packet)
	if p == nil {
		return
	}
	if g.tripped.Load() {
		// The close is on its way (trip runs it on another goroutine);
		// let it run instead of this emitter, which would otherwise keep
		// queueing until the scheduler gets to it.
		runtime.Gosched()
		return
	}
	if g.unsettled.Load() != 0 { // a CONNECT_ERROR reply settles the gate
		if sb, ok := p.Data.(*types.StringBuffer); ok && sb != nil && sb.Buffer != nil {
			if raw := sb.Bytes(); len(raw) > 0 && raw[0] == '4' {
				g.settle(rawNamespace(raw))
			}
		}
	}
	g.outPackets.Add(1)
	g.outBytes.Add(packetSize(p))
	g.checkOutgoing()
}

// checkOutgoing closes the connection once its outbound backlog is over
// MaxOutgoing packets or MaxOutgoingBytes, after a packet was queued or, on
// the direct send path (directsend.go), written.
func (g *connGuard) checkOutgoing() {
	n, b := g.backlog()
	if n > int64(g.t.cfg.MaxOutgoing) || b > g.t.cfg.MaxOutgoingBytes {
		g.trip(true, "slow consumer: outgoing backlog over limit",
			"packets", n, "maxPackets", g.t.cfg.MaxOutgoing, "bytes", b, "maxBytes", g.t.cfg.MaxOutgoingBytes)
	}
}

// onFlush runs (under the engine socket's flush mutex) when the write buffer
// is handed to the transport.
func (g *connGuard) onFlush(args ...any) {
	if len(args) == 0 {
		return
	}
	wbuf, _ := args[0].([]*packet.Packet)
	var size int64
	for _, p := range wbuf {
		size += packetSize(p)
	}
	// Packets created before the guard was attached (the OPEN packet) may be
	// flushed after it; the counters may then dip below zero by that much,
	// which only makes the guard a packet more lenient.
	g.outPackets.Add(-int64(len(wbuf)))
	g.outBytes.Add(-size)
	g.t.stats.packetsSent.Add(uint64(len(wbuf)))
	g.t.stats.bytesSent.Add(uint64(size))
}

// backlog is what waits to be written to the connection: packets in the
// engine's write buffer plus, on the server's WebSocket transport (which the
// engine flushes into at once), what that transport has not written yet.
func (g *connGuard) backlog() (packets, bytes int64) {
	packets, bytes = g.outPackets.Load(), g.outBytes.Load()
	if w, ok := g.conn.Transport().(*wsTransport); ok {
		wn, wb := w.unsent()
		packets, bytes = packets+wn, bytes+wb
	}
	return packets, bytes
}

// packetSize is the payload size of an engine packet still waiting to be
// written (its reader has not been consumed yet at create and flush time).
func packetSize(p *packet.Packet) int64 {
	if p == nil || p.Data == nil {
		return 0
	}
	if l, ok := p.Data.(interface{ Len() int }); ok {
		return int64(l.Len())
	}
	return 0
}

// trip closes the connection once, with Close(true): it discards the
// transport at once, where Close(false) would wait for a "drain" that a stuck
// writer never emits. The close runs the socket's disconnect handlers.
//
// async is needed on the outbound path: packetCreate fires inside library
// code that holds locks (Client.WriteToEngine holds the client mutex around
// conn.Write) and inside whatever the emitter holds (a Handler's own
// locks). A few more packets may be
// queued before the close lands; after it, sendPacket drops everything. The
// inbound path runs on the connection's reader with no lock held and closes
// synchronously.
func (g *connGuard) trip(async bool, reason string, attrs ...any) {
	if !g.tripped.CompareAndSwap(false, true) {
		return
	}
	if async { // the outbound cap; the inbound one closes synchronously
		g.t.stats.slowConsumers.Add(1)
	} else {
		g.t.stats.floods.Add(1)
	}
	attrs = append([]any{"reason", reason}, attrs...)
	attrs = append(attrs, "remote", g.conn.RemoteAddress())
	if id := g.socketID.Load(); id != nil {
		attrs = append(attrs, "socket", *id)
	}
	if tr := g.conn.Transport(); tr != nil {
		attrs = append(attrs, "transport", tr.Name())
	}
	g.t.log.Warn("closing socket.io connection", attrs...)
	if async {
		go g.conn.Close(true)
		return
	}
	g.conn.Close(true)
}
