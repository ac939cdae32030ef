package sio

// Lean WebSocket sessions: engine.io and socket.io served by this package
// itself, for clients that open a WebSocket straight away (no polling
// first), with no per-connection object of the library.
//
// Why: measured with bench/memidle (10,000 idle sockets, bench/README.md
// "Memory per idle connection"), a socket on the library's objects costs
// about 30 KiB of RSS, of which the library's own per-connection objects
// (engine socket and transport, socket.io client and socket with their
// emitters and listener maps, the handshake's HttpContext and request,
// gorilla's Conn, a heartbeat timer with its goroutine) and the reader
// goroutine are some 23 KiB: more than a whole socket costs on Node. A
// signaling server mostly holds idle connections, so that is what decides
// how many calls a machine carries.
//
// A lean session is a leanConn (the WebSocket, a frameWriter, the
// handshake's query and headers) and a Socket per namespace: 5-6 KiB of
// RSS per idle socket with the router's own state (bench/memidle), where
// Node's socket.io costs 14-18 and on uWebSockets.js 10-13. Nothing waits
// per connection:
//
//   - Reads: the descriptor is also in an epoll set of the server's own
//     (lean_linux.go) whose one goroutine reads every readable connection
//     with non-blocking read(2) into one buffer, cuts WebSocket frames,
//     answers WebSocket and engine.io control packets at once and queues
//     socket.io packets for the connection. A frame that arrives in pieces
//     keeps only its bytes so far.
//   - Handling: a connection with queued packets gets a goroutine that
//     handles them in order (Admit, Connect, Event, DISCONNECT) and exits
//     when the queue is empty: Handlers may block (a cluster's Redis round
//     trip) without holding up anyone else's reads, and the goroutine and
//     its stack exist only while a message is in flight. A connection with
//     leanQueueMax packets queued is taken out of the epoll set until its
//     queue drains, so a client that emits faster than its events are
//     handled is slowed by TCP, as on the library's WebSocket.
//   - Writes: the frameWriter the library's WebSocket uses (framewriter.go).
//   - Heartbeat and connect timeout: one wheel for every connection
//     (leanWheel), one goroutine.
//
// The handshake is served on net/http's goroutine, which returns once the
// connection is hijacked, so net/http's per-connection buffers go too.
//
// The wire is the library's: the same open packet, CONNECT reply, refusals
// ("Invalid namespace", the Handler's connect_error with its data),
// encoding of events and acks, DISCONNECT, heartbeat, disconnect reasons
// ("client namespace disconnect", "server namespace disconnect", "transport
// close", "transport error", "ping timeout", "forced close", "server
// shutting down"), and the Handler's ordering rules (Admit before Connect,
// Connect before events, events in order, Disconnect once after Connect
// returned). Rooms of lean sockets are kept here (leanRooms) and reached
// by Broadcast and Send next to the library's.
//
// What stays on the library: long-polling, polling sessions that upgrade to
// a WebSocket, engine.io v3 clients, and every session while connection
// state recovery is on (the library keeps what a session missed). A server
// without epoll (not Linux) serves every session on the library.

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
)

// leanQueueMax is how many socket.io packets of one connection may wait to
// be handled before its reads pause (see the file comment). Lower than any
// MaxPending a deployment uses, so a lean connection is slowed rather
// than dropped as a flood.
const leanQueueMax = 32

// leanConnectTimeout closes a connection that opened no namespace this
// long after its handshake, as the library's connectTimeout does.
const leanConnectTimeout = 45 * time.Second

// The disconnect reasons of socket.io, as the library reports them.
const (
	reasonServerDisconnect = "server namespace disconnect"
	reasonTransportClose   = "transport close"
	reasonTransportError   = "transport error"
	reasonPingTimeout      = "ping timeout"
	reasonForcedClose      = "forced close"
	reasonShuttingDown     = "server shutting down"
)

// leanServer holds the lean sessions of one Server.
type leanServer struct {
	t     *Server
	poll  *leanPoller
	wheel *leanWheel

	mu      sync.Mutex
	conns   map[*leanConn]struct{}
	closing bool
	// connsPeak and idsPeak are the largest sizes of conns and byID since
	// each was last rebuilt (shrunk).
	connsPeak, idsPeak int

	// rooms are the main namespace's lean sockets by application room,
	// byID by socket id; under roomsMu.
	roomsMu sync.RWMutex
	rooms   map[string]map[*Socket]struct{}
	byID    map[string]*Socket
}

// newLeanServer starts the reader and the heartbeat of t's lean sessions;
// it fails where epoll is not available.
func newLeanServer(t *Server) (*leanServer, error) {
	l := &leanServer{t: t, conns: map[*leanConn]struct{}{},
		rooms: map[string]map[*Socket]struct{}{}, byID: map[string]*Socket{}}
	p, err := newLeanPoller(l.readable)
	if err != nil {
		return nil, err
	}
	l.poll = p
	l.wheel = newLeanWheel(t.cfg.PingInterval, t.cfg.PingTimeout, l.due)
	return l, nil
}

// leanConn is one engine.io WebSocket session served lean.
type leanConn struct {
	frameWriter
	l  *leanServer
	fd int
	rc syscall.RawConn
	id string // engine.io session id (ClientID)

	// The handshake, for Auth-less reads (Query, Handshake).
	uri     string // request URI: path and query
	header  http.Header
	address string
	secure  bool

	// Read state, under readMu: the poller's, and the worker's when it
	// resumes a paused connection.
	readMu  sync.Mutex
	partial []byte  // bytes read but not cut yet (an incomplete frame, or what a pause left)
	frag    *[]byte // a fragmented text message so far
	fragBin bool    // the fragmented message is binary
	// hold is set while reads are paused: consume stops cutting frames.
	hold atomic.Bool

	mu        sync.Mutex
	sockets   []*Socket // one per namespace
	connected bool      // some namespace was connected once
	inbox     []*[]byte // socket.io packets waiting for the worker, in order
	working   bool      // a worker goroutine runs
	paused    bool      // out of the epoll set until inbox drains
	ended     string    // the close reason, once closing ("" while open)
	reported  bool      // the worker reported the sockets' disconnect
	awaiting  bool      // a ping is out without its pong
	due       int64     // the wheel tick this connection is next due at
	opened    time.Time // when the handshake was served: the connect timeout and Handshake().Time

	// Its place in the heartbeat wheel, under the wheel's lock: slot -1
	// when in none.
	wheelSlot, wheelIdx int
}

// Socket fields of a lean socket live in leanSocket, so a library socket
// pays one pointer for them.
type leanSocket struct {
	lc    *leanConn
	nsp   string
	open  atomic.Bool
	rooms []string // application rooms joined; under l.roomsMu
}

// wantsLean reports whether r is a handshake that a lean session serves:
// a fresh engine.io 4 WebSocket (no session id, so no polling upgrade).
func (l *leanServer) wantsLean(r *http.Request) bool {
	if l == nil || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return false
	}
	q := r.URL.Query()
	return q.Get("sid") == "" && q.Get("transport") == "websocket" && q.Get("EIO") == "4"
}

// accept serves a handshake wantsLean chose: the origin check, the
// WebSocket upgrade, the engine.io open packet.
func (l *leanServer) accept(w http.ResponseWriter, r *http.Request) {
	t := l.t
	if origin := r.Header.Get("Origin"); !t.originAllowed(origin) {
		t.stats.refusedOrigin.Add(1)
		t.log.Debug("socket.io handshake refused", "reason", "origin not allowed", "origin", origin, "remote", r.RemoteAddr)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"code":4,"message":"Forbidden"}`))
		return
	}
	key := r.Header.Get("Sec-Websocket-Key")
	if r.Method != http.MethodGet || key == "" || r.Header.Get("Sec-Websocket-Version") != "13" ||
		!headerHasToken(r.Header, "Connection", "upgrade") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"code":3,"message":"Bad request"}`))
		return
	}
	l.mu.Lock()
	closing := l.closing
	l.mu.Unlock()
	if closing || t.isClosing() {
		http.Error(w, "server closing", http.StatusServiceUnavailable)
		return
	}
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "websocket upgrade unavailable", http.StatusInternalServerError)
		return
	}
	_ = nc.SetDeadline(time.Time{})
	var early []byte
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ = brw.Reader.Peek(n)
		early = append([]byte(nil), early...)
	}
	sc, ok := nc.(syscall.Conn)
	var rc syscall.RawConn
	if ok {
		rc, err = sc.SyscallConn()
	}
	if !ok || err != nil {
		nc.Close()
		return
	}
	lc := &leanConn{l: l, rc: rc, id: newSessionID(), uri: r.URL.RequestURI(), header: r.Header,
		address: r.RemoteAddr, secure: r.TLS != nil, opened: time.Now(), wheelSlot: -1}
	lc.header.Del("Sec-Websocket-Key") // nothing to display, and a secret of sorts
	lc.frameWriter = frameWriter{nc: nc, raw: rawConnOf(nc), writeTimeout: t.cfg.PingTimeout, owner: lc}
	_ = rc.Control(func(fd uintptr) { lc.fd = int(fd) })

	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		acceptKey(key) + "\r\n\r\n"
	open := fmt.Sprintf(`0{"sid":%q,"upgrades":[],"pingInterval":%d,"pingTimeout":%d,"maxPayload":%d}`,
		lc.id, t.cfg.PingInterval.Milliseconds(), t.cfg.PingTimeout.Milliseconds(), t.cfg.MaxPayload)
	buf := getFrameBuf()
	*buf = append(*buf, resp...)
	*buf = appendFrameHeader(*buf, opText, len(open))
	*buf = append(*buf, open...)
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		putFrameBuf(buf)
		nc.Close()
		return
	}
	l.conns[lc] = struct{}{}
	l.connsPeak = max(l.connsPeak, len(l.conns))
	l.mu.Unlock()
	t.stats.packetsSent.Add(1)
	t.stats.bytesSent.Add(uint64(len(open) - 1))
	lc.write(buf, 1, false)
	l.wheel.schedule(lc, time.Now().Add(t.cfg.PingInterval))
	if err := l.poll.add(lc); err != nil {
		lc.end(reasonTransportError, false)
		return
	}
	if len(early) > 0 {
		lc.readMu.Lock()
		l.consume(lc, early)
		lc.readMu.Unlock()
	}
}

// headerHasToken reports whether the comma-separated header name holds
// token (case-insensitive), as "Connection: keep-alive, Upgrade" does.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, part := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// acceptKey is the Sec-WebSocket-Accept of a key (RFC 6455 4.2.2).
func acceptKey(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// newSessionID is a random id in the library's alphabet (base64url, 20
// characters): socket ids must never contain appRoomPrefix's colon.
func newSessionID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// readable is the poller's call for a connection with bytes to read. A
// panic is contained to the connection, which is closed: the poller reads
// every lean connection, and a panic escaping it would end the server.
func (l *leanServer) readable(lc *leanConn, b []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			l.t.log.Error("panic while reading a WebSocket message; connection closed",
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			lc.end(reasonTransportError, false)
		}
	}()
	if err != nil {
		reason := reasonTransportError
		if errors.Is(err, errPeerClosed) {
			reason = reasonTransportClose
		}
		lc.end(reason, false)
		return
	}
	l.consume(lc, b)
}

// errPeerClosed is the poller's error for a connection the peer closed.
var errPeerClosed = errors.New("connection closed by peer")

// consume cuts the WebSocket frames in b (after any partial one kept) and
// handles each complete one; the rest is kept for the next read.
func (l *leanServer) consume(lc *leanConn, b []byte) {
	if lc.partial != nil {
		lc.partial = append(lc.partial, b...)
		b = lc.partial
		lc.partial = nil
	}
	limit := l.t.cfg.MaxPayload
	for len(b) > 0 {
		f, rest, status := cutFrame(b, limit)
		switch status {
		case frameIncomplete:
			lc.partial = append(make([]byte, 0, len(b)+512), b...)
			return
		case frameTooBig:
			lc.protocolError(1009)
			return
		case frameBad:
			lc.protocolError(1002)
			return
		}
		b = rest
		if !l.frame(lc, f) {
			return
		}
		if lc.hold.Load() && len(b) > 0 {
			// Paused: what is left waits, read but not cut, until the
			// worker resumes (resume), so the queue stays bounded
			// whatever one read held.
			lc.partial = append([]byte(nil), b...)
			return
		}
	}
}

// resume reads a paused connection again, once its worker has drained the
// queue: first what the pause left unread, then the socket.
func (l *leanServer) resume(lc *leanConn) {
	lc.readMu.Lock()
	defer lc.readMu.Unlock()
	lc.hold.Store(false)
	if lc.partial != nil {
		l.consume(lc, nil)
	}
	lc.mu.Lock()
	again := lc.paused || lc.ended != ""
	lc.mu.Unlock()
	if !again {
		l.poll.resume(lc)
	}
}

// frame handles one WebSocket frame; false once the connection ends.
func (l *leanServer) frame(lc *leanConn, f wsFrame) bool {
	switch f.op {
	case 0x8: // close: echo its code, as gorilla's default handler does
		code := 1000
		if len(f.payload) >= 2 {
			code = int(f.payload[0])<<8 | int(f.payload[1])
		}
		lc.closeFrame(code)
		lc.end(reasonTransportClose, false)
		return false
	case 0x9: // ping
		lc.writeControl(opPong, f.payload, false)
		return true
	case 0xA: // pong
		return true
	case 0x0: // continuation
		if lc.frag == nil {
			return lc.protocolError(1002)
		}
		if int64(len(*lc.frag)+len(f.payload)) > l.t.cfg.MaxPayload {
			return lc.protocolError(1009)
		}
		*lc.frag = append(*lc.frag, f.payload...)
		if !f.fin {
			return true
		}
		msg, bin := lc.frag, lc.fragBin
		lc.frag = nil
		ok := l.message(lc, *msg, bin)
		putFrameBuf(msg)
		return ok
	case opText, opBinary:
		if lc.frag != nil {
			return lc.protocolError(1002)
		}
		if !f.fin {
			lc.frag, lc.fragBin = getFrameBuf(), f.op == opBinary
			*lc.frag = append(*lc.frag, f.payload...)
			return true
		}
		return l.message(lc, f.payload, f.op == opBinary)
	default:
		return lc.protocolError(1002)
	}
}

// message handles one engine.io packet; false once the connection ends.
func (l *leanServer) message(lc *leanConn, b []byte, binary bool) bool {
	if binary {
		// socket.io binary attachments are refused on every path
		// (wireDecoder), which closes the connection.
		l.t.log.Debug("socket.io packet refused, closing connection", "reason", errWireBinary)
		lc.end(reasonForcedClose, false)
		return false
	}
	if len(b) == 0 {
		lc.end("parse error", false)
		return false
	}
	switch b[0] {
	case '3': // pong
		lc.mu.Lock()
		wasAwaiting := lc.awaiting
		lc.awaiting = false
		lc.mu.Unlock()
		if wasAwaiting {
			l.wheel.schedule(lc, time.Now().Add(l.t.cfg.PingInterval))
		}
		return true
	case '4':
		lc.enqueue(b[1:])
		return true
	case '1': // close
		lc.end(reasonTransportClose, false)
		return false
	case '2', '5', '6': // a client ping, upgrade, noop: nothing to do
		return true
	default:
		lc.end("parse error", false)
		return false
	}
}

// enqueue queues a socket.io packet for the connection's worker, starting
// one if none runs, and pauses reads at leanQueueMax.
func (lc *leanConn) enqueue(pkt []byte) {
	buf := getFrameBuf()
	*buf = append(*buf, pkt...)
	lc.mu.Lock()
	if lc.ended != "" {
		lc.mu.Unlock()
		putFrameBuf(buf)
		return
	}
	lc.inbox = append(lc.inbox, buf)
	pause := len(lc.inbox) >= min(leanQueueMax, lc.l.t.cfg.MaxPending) && !lc.paused
	if pause {
		lc.paused = true
		lc.hold.Store(true)
	}
	start := !lc.working
	lc.working = true
	lc.mu.Unlock()
	if pause {
		lc.l.poll.pause(lc)
	}
	if start {
		go lc.work()
	}
}

// work handles queued packets in order until none is left; once the
// connection ended, it reports its sockets' disconnect after them.
func (lc *leanConn) work() {
	for {
		lc.mu.Lock()
		if len(lc.inbox) == 0 {
			resume := lc.paused && lc.ended == ""
			lc.paused = lc.paused && !resume
			var gone []*Socket
			if lc.ended != "" && !lc.reported {
				lc.reported = true
				gone = append(gone, lc.sockets...)
			}
			reason := lc.ended
			lc.working = false
			lc.mu.Unlock()
			if resume {
				lc.l.resume(lc)
			}
			for _, s := range gone {
				s.leanGone(reason)
			}
			return
		}
		// Popped by a copy (at most leanQueueMax pointers), so the
		// array is reused by the next message instead of allocated anew;
		// one grown by a burst is let go once empty.
		buf := lc.inbox[0]
		n := copy(lc.inbox, lc.inbox[1:])
		lc.inbox[n] = nil
		lc.inbox = lc.inbox[:n]
		if n == 0 && cap(lc.inbox) > 4 {
			lc.inbox = nil
		}
		lc.mu.Unlock()
		lc.handleSafely(*buf)
		putFrameBuf(buf)
	}
}

// handleSafely is handle with a panic contained to this connection, which
// is closed.
func (lc *leanConn) handleSafely(pkt []byte) {
	defer func() {
		if v := recover(); v != nil {
			lc.l.t.log.Error("panic while handling a socket.io packet; connection closed",
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			lc.end(reasonForcedClose, false)
		}
	}()
	lc.handle(pkt)
}

// handle runs one socket.io packet on the worker.
func (lc *leanConn) handle(pkt []byte) {
	t := lc.l.t
	p, text, obj, err := decodeFrame(pkt, t.passThrough, true)
	if err == nil {
		err = checkClientPacket(p)
	}
	if err != nil {
		t.log.Debug("socket.io packet refused, closing connection", "reason", err)
		lc.end(reasonForcedClose, false)
		return
	}
	s := lc.socketOf(p.Nsp)
	switch p.Type {
	case parser.CONNECT:
		if s != nil {
			lc.end(reasonForcedClose, false) // the library: "invalid state"
			return
		}
		auth, _ := p.Data.(map[string]any)
		lc.connect(p.Nsp, auth)
	case parser.EVENT:
		if s == nil {
			lc.end(reasonForcedClose, false)
			return
		}
		if !s.lean.open.Load() || s.phase.Load() == phaseReported {
			return
		}
		ev := eventOf(p, text, obj)
		if p.Id != nil {
			ev.Reply = s.leanAck(*p.Id)
		}
		s.h.Event(s, ev)
	case parser.DISCONNECT:
		if s == nil {
			lc.end(reasonForcedClose, false)
			return
		}
		s.leanGone(ReasonGoodbye)
	case parser.ACK:
		// The server asks no acks of lean sockets: nothing waits for one.
		if s == nil {
			lc.end(reasonForcedClose, false)
		}
	}
}

// socketOf is the connection's socket on namespace nsp, or nil.
func (lc *leanConn) socketOf(nsp string) *Socket {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	for _, s := range lc.sockets {
		if s.lean.nsp == nsp {
			return s
		}
	}
	return nil
}

// connect answers a CONNECT for nsp: Admit, the reply, Connect.
func (lc *leanConn) connect(nsp string, auth map[string]any) {
	t := lc.l.t
	h := t.h
	if nsp != "/" {
		v, ok := t.namespaces.Load(nsp)
		if !ok {
			lc.sendPacket(nsp, `4`, `{"message":"Invalid namespace"}`)
			return
		}
		h = v.(Handler)
	}
	if auth == nil {
		auth = map[string]any{}
	}
	s := &Socket{srv: t, id: newSessionID(), h: h, lean: &leanSocket{lc: lc, nsp: nsp}, auth: auth}
	admission, err := lc.admit(s)
	if err != nil {
		body := map[string]any{"message": err.Error()}
		if ref, ok := err.(*Refusal); ok && ref.Data != nil {
			body["data"] = ref.Data
		}
		js, jerr := json.Marshal(body)
		if jerr != nil {
			js, _ = json.Marshal(map[string]any{"message": err.Error()})
		}
		lc.sendPacket(nsp, `4`, string(js))
		return
	}
	s.admission = admission
	lc.mu.Lock()
	if lc.ended != "" {
		lc.mu.Unlock()
		return // gone during Admit: the Handler never hears of it
	}
	lc.sockets = append(lc.sockets, s)
	lc.connected = true
	lc.mu.Unlock()
	s.lean.open.Store(true)
	if nsp == "/" {
		lc.l.roomsMu.Lock()
		lc.l.byID[s.id] = s
		lc.l.idsPeak = max(lc.l.idsPeak, len(lc.l.byID))
		lc.l.roomsMu.Unlock()
	}
	lc.sendPacket(nsp, `0`, `{"sid":"`+s.id+`"}`)
	func() {
		defer func() {
			if v := recover(); v != nil {
				t.log.Error("connection handler panicked; socket closed", "socket_id", s.id, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				lc.end(reasonForcedClose, false)
			}
		}()
		s.h.Connect(s)
	}()
	s.announced()
}

// admit is the Handler's Admit with a panic turned into a refusal.
func (lc *leanConn) admit(s *Socket) (admission any, err error) {
	defer func() {
		if v := recover(); v != nil {
			lc.l.t.log.Error("handshake check panicked; connection refused", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			admission, err = nil, errors.New("internal error")
		}
	}()
	return s.h.Admit(s)
}

// sendPacket writes one socket.io packet of type typ (a digit) on
// namespace nsp with the JSON body.
func (lc *leanConn) sendPacket(nsp, typ, body string) {
	buf := getFrameBuf()
	b := append((*buf)[:0], make([]byte, frameHeaderMax)...)
	b = append(b, '4')
	b = append(b, typ...)
	b = appendNamespace(b, nsp)
	b = append(b, body...)
	*buf = b
	lc.writeFrame(buf)
}

// appendNamespace writes a packet's namespace part: nothing for "/".
func appendNamespace(b []byte, nsp string) []byte {
	if nsp == "/" {
		return b
	}
	return append(append(b, nsp...), ',')
}

// writeFrame writes the engine.io packet in buf, which starts with
// frameHeaderMax bytes of room for the frame header (takes buf).
func (lc *leanConn) writeFrame(buf *[]byte) {
	b := *buf
	n := len(b) - frameHeaderMax
	var hb [frameHeaderMax]byte
	h := appendFrameHeader(hb[:0], opText, n)
	copy(b[len(h):], b[frameHeaderMax:])
	copy(b, h)
	*buf = b[:len(h)+n]
	lc.l.t.stats.packetsSent.Add(1)
	lc.l.t.stats.bytesSent.Add(uint64(n - 1))
	lc.write(buf, 1, false)
	lc.checkOutgoing()
}

// checkOutgoing drops the connection as a slow consumer once its unsent
// backlog is over MaxOutgoing or MaxOutgoingBytes (connGuard's caps).
func (lc *leanConn) checkOutgoing() {
	t := lc.l.t
	n, b := lc.unsent()
	if n <= int64(t.cfg.MaxOutgoing) && b <= t.cfg.MaxOutgoingBytes {
		return
	}
	lc.mu.Lock()
	ended := lc.ended != ""
	socketID := ""
	if len(lc.sockets) > 0 {
		socketID = lc.sockets[0].id
	}
	lc.mu.Unlock()
	if ended {
		return
	}
	t.stats.slowConsumers.Add(1)
	t.log.Warn("closing socket.io connection", "reason", "slow consumer: outgoing backlog over limit",
		"packets", n, "maxPackets", t.cfg.MaxOutgoing, "bytes", b, "maxBytes", t.cfg.MaxOutgoingBytes,
		"remote", lc.address, "socket", socketID, "transport", "websocket")
	lc.end(reasonForcedClose, false)
}

// closeFrame writes a close frame with code (the last frame written).
func (lc *leanConn) closeFrame(code int) {
	lc.writeControl(opClose, []byte{byte(code >> 8), byte(code)}, true)
}

// protocolError ends the connection with a close frame of code (1002
// protocol error, 1009 too big), as gorilla does on the library's path;
// it reports false, for frame's callers.
func (lc *leanConn) protocolError(code int) bool {
	lc.closeFrame(code)
	lc.end(reasonTransportError, false)
	return false
}

// end closes the connection once, for reason: reads stop, the socket is
// closed (after what was written, with graceful), and the worker reports
// every socket's disconnect after the packets queued before.
func (lc *leanConn) end(reason string, graceful bool) {
	lc.mu.Lock()
	if lc.ended != "" {
		lc.mu.Unlock()
		return
	}
	lc.ended = reason
	start := !lc.working
	lc.working = true
	lc.mu.Unlock()
	lc.l.poll.remove(lc)
	lc.l.wheel.remove(lc)
	lc.l.mu.Lock()
	delete(lc.l.conns, lc)
	lc.l.conns = shrunk(lc.l.conns, &lc.l.connsPeak)
	lc.l.mu.Unlock()
	if graceful {
		lc.closeAfterWrites(nil)
	} else {
		lc.closeNow()
	}
	if start {
		go lc.work()
	}
}

// closeNow closes the socket (writerOwner).
func (lc *leanConn) closeNow() {
	lc.markClosed()
	_ = lc.nc.Close()
}

// writeFailed ends the connection after a failed write (writerOwner).
func (lc *leanConn) writeFailed(error) { lc.end(reasonTransportError, false) }

// due is the wheel's call for a connection whose heartbeat is due: a
// ping, or the end of one that went unanswered; and the connect timeout.
func (l *leanServer) due(lc *leanConn, now time.Time) {
	lc.mu.Lock()
	if lc.ended != "" {
		lc.mu.Unlock()
		return
	}
	if !lc.connected && now.Sub(lc.opened) >= leanConnectTimeout {
		lc.mu.Unlock()
		lc.end(reasonForcedClose, false)
		return
	}
	if lc.awaiting {
		lc.mu.Unlock()
		lc.end(reasonPingTimeout, false)
		return
	}
	lc.awaiting = true
	lc.mu.Unlock()
	l.wheel.schedule(lc, now.Add(l.t.cfg.PingTimeout))
	buf := getFrameBuf()
	*buf = appendFrameHeader(*buf, opText, 1)
	*buf = append(*buf, '2')
	l.t.stats.packetsSent.Add(1)
	lc.write(buf, 1, false)
}

// leanGone is a lean socket's end: out of its connection, rooms and the
// id index, and reported to the Handler (once, after Connect returned).
func (s *Socket) leanGone(reason string) {
	if !s.lean.open.CompareAndSwap(true, false) {
		return
	}
	lc := s.lean.lc
	lc.mu.Lock()
	for i, o := range lc.sockets {
		if o == s {
			lc.sockets = append(lc.sockets[:i:i], lc.sockets[i+1:]...)
			break
		}
	}
	lc.mu.Unlock()
	s.gone(reason)
	if s.lean.nsp == "/" {
		lc.l.leaveAll(s)
	}
}

// leanAck answers a client's ack callback once.
func (s *Socket) leanAck(id uint64) func(any) {
	var sent atomic.Bool
	return func(v any) {
		if !sent.CompareAndSwap(false, true) || !s.lean.open.Load() {
			return
		}
		buf := getFrameBuf()
		b := append((*buf)[:0], make([]byte, frameHeaderMax)...)
		b = append(b, '4', '0'+byte(parser.ACK))
		b = appendNamespace(b, s.lean.nsp)
		b = strconv.AppendUint(b, id, 10)
		b = append(b, '[')
		b = appendValue(b, v)
		b = append(b, ']')
		*buf = b
		s.lean.lc.writeFrame(buf)
	}
}

// appendValue appends v as JSON: appendJSON's fast encoding, or
// encoding/json's for the types it leaves out; null for what neither can
// encode (a channel, a function), as the library's encoder leaves such a
// value out.
func appendValue(b []byte, v any) []byte {
	mark := len(b)
	if out, ok := appendJSON(b, v); ok {
		return out
	}
	js, err := json.Marshal(v)
	if err != nil {
		js = []byte("null")
	}
	return append(b[:mark], js...)
}

// leanEmit writes an event to a lean socket.
func (s *Socket) leanEmit(event string, args []any) error {
	if !s.lean.open.Load() {
		return nil // as the library: an emit to a closed socket is dropped
	}
	if socket.SOCKET_RESERVED_EVENTS.Has(event) {
		return fmt.Errorf("sio: %q is a reserved event name", event)
	}
	buf, err := encodeEventFrame(s.lean.nsp, event, args)
	if err != nil {
		return err
	}
	s.lean.lc.writeFrame(buf)
	return nil
}

// encodeEventFrame encodes an EVENT for namespace nsp as an engine.io
// packet after frameHeaderMax bytes of room (see writeFrame).
func encodeEventFrame(nsp, event string, args []any) (*[]byte, error) {
	buf := getFrameBuf()
	b := append((*buf)[:0], make([]byte, frameHeaderMax)...)
	b = append(b, '4', byte(parser.EVENT)+'0')
	b = appendNamespace(b, nsp)
	b = append(b, '[')
	b = appendJSONString(b, event)
	for _, a := range args {
		if _, ack := a.(socket.Ack); ack {
			*buf = b
			putFrameBuf(buf)
			return nil, errors.New("sio: acknowledgements are not asked of clients")
		}
		b = appendValue(append(b, ','), a)
	}
	b = append(b, ']')
	*buf = b
	return buf, nil
}

// leanDisconnect is Socket.Disconnect on a lean socket: a DISCONNECT packet,
// then the socket's end; the connection stays for the client to close.
func (s *Socket) leanDisconnect() {
	if !s.lean.open.Load() {
		return
	}
	s.lean.lc.sendPacket(s.lean.nsp, `1`, "")
	s.leanGone(reasonServerDisconnect)
}

// leanClose is Socket.Close on a lean socket: every socket of the
// connection disconnected, as the library's Disconnect(true), then the
// connection closed once that is written.
func (s *Socket) leanClose() {
	lc := s.lean.lc
	lc.mu.Lock()
	socks := append([]*Socket(nil), lc.sockets...)
	lc.mu.Unlock()
	for _, o := range socks {
		o.leanDisconnect()
	}
	lc.end(reasonServerDisconnect, true)
}

// Rooms of lean sockets (the main namespace's).

// join adds s to room.
func (l *leanServer) join(s *Socket, room string) {
	l.roomsMu.Lock()
	defer l.roomsMu.Unlock()
	if !s.lean.open.Load() {
		return
	}
	m := l.rooms[room]
	if m == nil {
		m = map[*Socket]struct{}{}
		l.rooms[room] = m
	}
	if _, in := m[s]; in {
		return
	}
	m[s] = struct{}{}
	s.lean.rooms = append(s.lean.rooms, room)
}

// leave takes s out of room.
func (l *leanServer) leave(s *Socket, room string) {
	l.roomsMu.Lock()
	defer l.roomsMu.Unlock()
	l.leaveLocked(s, room)
	for i, r := range s.lean.rooms {
		if r == room {
			s.lean.rooms = append(s.lean.rooms[:i:i], s.lean.rooms[i+1:]...)
			break
		}
	}
}

func (l *leanServer) leaveLocked(s *Socket, room string) {
	if m := l.rooms[room]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(l.rooms, room)
		}
	}
}

// leaveAll takes a closed s out of every room and the id index.
func (l *leanServer) leaveAll(s *Socket) {
	l.roomsMu.Lock()
	defer l.roomsMu.Unlock()
	for _, r := range s.lean.rooms {
		l.leaveLocked(s, r)
	}
	s.lean.rooms = nil
	if l.byID[s.id] == s {
		delete(l.byID, s.id)
		l.byID = shrunk(l.byID, &l.idsPeak)
	}
}

// send writes an event to the lean sockets an Audience selects (rooms are
// application rooms' names). Encoded once; each socket gets a copy.
func (l *leanServer) send(to Audience, event string, args []any) error {
	if l == nil {
		return nil
	}
	l.roomsMu.RLock()
	var targets []*Socket
	if to.Everyone {
		targets = make([]*Socket, 0, len(l.byID))
		for _, s := range l.byID {
			targets = append(targets, s)
		}
	} else if len(to.Rooms) == 1 && len(to.Sockets) == 0 {
		// The common case (a room's broadcast): nothing to deduplicate.
		m := l.rooms[to.Rooms[0]]
		targets = make([]*Socket, 0, len(m))
		for s := range m {
			targets = append(targets, s)
		}
	} else {
		seen := map[*Socket]struct{}{}
		add := func(s *Socket) {
			if _, dup := seen[s]; !dup {
				seen[s] = struct{}{}
				targets = append(targets, s)
			}
		}
		for _, r := range to.Rooms {
			for s := range l.rooms[r] {
				add(s)
			}
		}
		for _, id := range to.Sockets {
			if s := l.byID[id]; s != nil {
				add(s)
			}
		}
	}
	if len(to.ExceptRooms) > 0 || len(to.ExceptSockets) > 0 {
		kept := targets[:0]
	next:
		for _, s := range targets {
			for _, id := range to.ExceptSockets {
				if s.id == id {
					continue next
				}
			}
			for _, r := range to.ExceptRooms {
				if _, in := l.rooms[r][s]; in {
					continue next
				}
			}
			kept = append(kept, s)
		}
		targets = kept
	}
	l.roomsMu.RUnlock()
	if len(targets) == 0 {
		return nil
	}
	frame, err := encodeEventFrame("/", event, args)
	if err != nil {
		return err
	}
	for _, s := range targets {
		if !s.lean.open.Load() {
			continue
		}
		buf := getFrameBuf()
		*buf = append(*buf, *frame...)
		s.lean.lc.writeFrame(buf)
	}
	putFrameBuf(frame)
	return nil
}

// shrunk returns m, or a copy of it once it has fallen to a sixteenth of
// its peak (and the peak was large): Go maps never give back the buckets
// of deleted entries, so after a mass disconnect the connection and id
// indexes would keep the memory of every socket that ever was (about
// 0.9 MiB for 10,000, measured by bench/memidle after close). Copying is
// amortized by the deletes that led to it.
func shrunk[K comparable, V any](m map[K]V, peak *int) map[K]V {
	if *peak < 1024 || len(m)*16 > *peak {
		return m
	}
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	*peak = len(out)
	return out
}

// count is the number of lean connections open now.
func (l *leanServer) count() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// close ends every lean session ("server shutting down"; the clients see
// their transport close and reconnect) and refuses new ones.
func (l *leanServer) close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return
	}
	l.closing = true
	conns := make([]*leanConn, 0, len(l.conns))
	for lc := range l.conns {
		conns = append(conns, lc)
	}
	l.mu.Unlock()
	for _, lc := range conns {
		lc.end(reasonShuttingDown, true)
	}
	l.wheel.stop()
	l.poll.stop()
}

// query parses the handshake's query string.
func (lc *leanConn) query() url.Values {
	if i := strings.IndexByte(lc.uri, '?'); i >= 0 {
		q, _ := url.ParseQuery(lc.uri[i+1:])
		return q
	}
	return url.Values{}
}

// handshake is what the client's handshake carried, as the library's
// Handshake reports it (header and query values as []string).
func (lc *leanConn) handshake() Handshake {
	out := Handshake{Address: lc.address, Time: lc.opened, Issued: lc.opened.UnixMilli(), Secure: lc.secure,
		XDomain: lc.header.Get("Origin") != "", URL: lc.uri,
		Headers: make(map[string]any, len(lc.header)), Query: map[string]any{}}
	for k, v := range lc.header {
		out.Headers[k] = append([]string(nil), v...)
	}
	for k, v := range lc.query() {
		out.Query[k] = v
	}
	return out
}
