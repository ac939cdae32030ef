//go:build linux

package main

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxPayload bounds one client frame, as the router's 64 KiB max_payload.
const maxPayload = 64 << 10

// server holds every session, the epoll set that reads them and the
// heartbeat wheel.
type server struct {
	epfd              int
	interval, timeout time.Duration

	mu       sync.Mutex
	sessions []*session // by descriptor number
	wheel    wheel

	events atomic.Int64 // socket.io events received (counted, dropped)
}

// session is one engine.io WebSocket session with its socket.io socket on
// the main namespace: everything the server keeps for an idle client.
type session struct {
	conn net.Conn
	rc   syscall.RawConn
	fd   int
	id   string // engine.io sid; the socket.io id is derived from it

	mu        sync.Mutex
	connected bool   // socket.io CONNECT answered
	awaiting  bool   // a ping is out, no pong yet
	next      int64  // wheel second this session is due at
	partial   []byte // a frame that arrived in pieces; nil when none
	closed    bool
}

func newServer(interval, timeout time.Duration) (*server, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	s := &server{epfd: epfd, interval: interval, timeout: timeout}
	s.wheel.init(int((interval+timeout)/time.Second) + 3)
	go s.poll()
	go s.beat()
	return s, nil
}

var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// serveConn answers one HTTP request on c: /health, or a socket.io
// WebSocket handshake that becomes a session. The goroutine ends with the
// request.
func (s *server) serveConn(c net.Conn) {
	br := readers.Get().(*bufio.Reader)
	br.Reset(c)
	defer func() { br.Reset(nil); readers.Put(br) }()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	req, err := http.ReadRequest(br)
	if err != nil {
		c.Close()
		return
	}
	q := req.URL.Query()
	switch {
	case req.URL.Path == "/health":
		_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\nConnection: close\r\n\r\n{\"status\":\"ok\"}"))
		c.Close()
		return
	case strings.TrimSuffix(req.URL.Path, "/") != "/socket.io" || q.Get("EIO") != "4" || q.Get("transport") != "websocket" ||
		!strings.EqualFold(req.Header.Get("Upgrade"), "websocket") || req.Header.Get("Sec-Websocket-Key") == "":
		_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
		c.Close()
		return
	}
	h := sha1.Sum([]byte(req.Header.Get("Sec-Websocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if _, err := c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(h[:]) + "\r\n\r\n")); err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	sc, ok := c.(syscall.Conn)
	if !ok {
		c.Close()
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		c.Close()
		return
	}
	ss := &session{conn: c, rc: rc, id: newID()}
	_ = rc.Control(func(fd uintptr) { ss.fd = int(fd) })
	var early []byte
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		early = append([]byte(nil), b...)
	}
	s.open(ss, early)
}

// open registers a session, sends the engine.io open packet and handles
// whatever the client sent along with its handshake.
func (s *server) open(ss *session, early []byte) {
	s.mu.Lock()
	for len(s.sessions) <= ss.fd {
		s.sessions = append(s.sessions, make([]*session, len(s.sessions)+1024)...)
	}
	s.sessions[ss.fd] = ss
	s.mu.Unlock()
	ss.mu.Lock()
	ok := ss.send(fmt.Sprintf(`0{"sid":%q,"upgrades":[],"pingInterval":%d,"pingTimeout":%d,"maxPayload":%d}`,
		ss.id, s.interval.Milliseconds(), s.timeout.Milliseconds(), maxPayload))
	ss.mu.Unlock()
	if !ok {
		s.close(ss)
		return
	}
	s.wheel.schedule(ss, time.Now().Add(s.interval))
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(ss.fd)}
	if err := syscall.EpollCtl(s.epfd, syscall.EPOLL_CTL_ADD, ss.fd, &ev); err != nil {
		s.close(ss)
		return
	}
	if len(early) > 0 {
		s.consume(ss, early)
	}
}

// count counts the sessions open now.
func (s *server) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ss := range s.sessions {
		if ss != nil {
			n++
		}
	}
	return n
}

func newID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// close ends a session once.
func (s *server) close(ss *session) {
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		return
	}
	ss.closed = true
	ss.partial = nil
	ss.mu.Unlock()
	s.mu.Lock()
	if ss.fd < len(s.sessions) && s.sessions[ss.fd] == ss {
		s.sessions[ss.fd] = nil
	}
	s.mu.Unlock()
	_ = syscall.EpollCtl(s.epfd, syscall.EPOLL_CTL_DEL, ss.fd, nil)
	ss.conn.Close()
}

var bufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// poll is the one goroutine that reads every session.
func (s *server) poll() {
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(s.epfd, events, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			panic(err)
		}
		for _, ev := range events[:n] {
			s.mu.Lock()
			var ss *session
			if int(ev.Fd) < len(s.sessions) {
				ss = s.sessions[ev.Fd]
			}
			s.mu.Unlock()
			if ss != nil {
				s.readable(ss)
			}
		}
	}
}

// readable reads what the kernel holds for ss without waiting.
func (s *server) readable(ss *session) {
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	for {
		var n int
		var rerr error
		err := ss.rc.Read(func(fd uintptr) bool {
			for {
				n, rerr = syscall.Read(int(fd), *bp)
				if rerr != syscall.EINTR {
					return true // never park: epoll says when to come back
				}
			}
		})
		switch {
		case err != nil || (rerr != nil && rerr != syscall.EAGAIN) || (rerr == nil && n == 0):
			s.close(ss)
			return
		case rerr == syscall.EAGAIN:
			return
		}
		if !s.consume(ss, (*bp)[:n]) {
			return
		}
		if n < len(*bp) {
			return
		}
	}
}

// consume parses the frames in b (after any partial one kept), handles
// every complete one and keeps the rest. It reports false once ss closed.
func (s *server) consume(ss *session, b []byte) bool {
	ss.mu.Lock()
	if ss.partial != nil {
		ss.partial = append(ss.partial, b...)
		b, ss.partial = ss.partial, nil
	}
	ss.mu.Unlock()
	for len(b) > 0 {
		op, payload, rest, ok, bad := nextFrame(b)
		if bad {
			s.close(ss)
			return false
		}
		if !ok {
			ss.mu.Lock()
			ss.partial = append([]byte(nil), b...)
			ss.mu.Unlock()
			return true
		}
		b = rest
		if !s.frame(ss, op, payload) {
			s.close(ss)
			return false
		}
	}
	return true
}

// nextFrame cuts one masked client frame off b and unmasks its payload in
// place. ok is false while the frame is incomplete; bad for a frame this
// experiment refuses (unmasked, fragmented, over maxPayload).
func nextFrame(b []byte) (op byte, payload, rest []byte, ok, bad bool) {
	if len(b) < 2 {
		return 0, nil, nil, false, false
	}
	fin, op, masked := b[0]&0x80 != 0, b[0]&0x0F, b[1]&0x80 != 0
	if !fin || !masked {
		return 0, nil, nil, false, true
	}
	n, h := uint64(b[1]&0x7F), 2
	switch n {
	case 126:
		if len(b) < 4 {
			return 0, nil, nil, false, false
		}
		n, h = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, nil, nil, false, false
		}
		n, h = binary.BigEndian.Uint64(b[2:]), 10
	}
	if n > maxPayload {
		return 0, nil, nil, false, true
	}
	if uint64(len(b)) < uint64(h)+4+n {
		return 0, nil, nil, false, false
	}
	mask := b[h : h+4]
	payload = b[h+4 : h+4+int(n)]
	for i := range payload {
		payload[i] ^= mask[i&3]
	}
	return op, payload, b[h+4+int(n):], true, false
}

// frame handles one WebSocket message: engine.io and socket.io packets,
// pings, close. It reports false when the session must end.
func (s *server) frame(ss *session, op byte, p []byte) bool {
	switch op {
	case 0x8: // close
		return false
	case 0x9: // ping
		ss.mu.Lock()
		defer ss.mu.Unlock()
		return ss.write(0xA, p)
	case 0xA: // pong
		return true
	case 0x1: // text
	default:
		return false
	}
	if len(p) == 0 {
		return false
	}
	switch p[0] {
	case '3': // pong
		ss.mu.Lock()
		ss.awaiting = false
		ss.mu.Unlock()
		s.wheel.schedule(ss, time.Now().Add(s.interval))
		return true
	case '1': // close
		return false
	case '4':
	default:
		return true
	}
	switch {
	case len(p) >= 2 && p[1] == '0': // CONNECT to "/"
		ss.mu.Lock()
		defer ss.mu.Unlock()
		ss.connected = true
		return ss.send(`40{"sid":"` + ss.id + `"}`)
	case len(p) >= 2 && p[1] == '1': // DISCONNECT
		return false
	case len(p) >= 2 && p[1] == '2': // EVENT
		s.events.Add(1)
		return true
	}
	return true
}

// send writes one engine.io text packet; under ss.mu.
func (ss *session) send(packet string) bool { return ss.write(0x1, []byte(packet)) }

// write sends one unmasked frame with a single non-blocking write(2);
// under ss.mu. A socket buffer too full to take it ends the session (the
// router would hand the rest to a writer goroutine instead).
func (ss *session) write(op byte, p []byte) bool {
	if ss.closed {
		return false
	}
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	b := append((*bp)[:0], 0x80|op)
	switch n := len(p); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xFFFF:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	b = append(b, p...)
	var n int
	var werr error
	err := ss.rc.Write(func(fd uintptr) bool {
		for {
			n, werr = syscall.Write(int(fd), b)
			if werr != syscall.EINTR {
				return true
			}
		}
	})
	return err == nil && werr == nil && n == len(b)
}

// beat runs the heartbeat wheel once a second: a due session without a
// ping out gets one and is due again at its pong deadline; a due session
// still awaiting its pong is closed.
func (s *server) beat() {
	for now := range time.Tick(time.Second) {
		for _, ss := range s.wheel.due(now) {
			ss.mu.Lock()
			if ss.closed || ss.next > now.Unix() {
				ss.mu.Unlock()
				continue // stale: a pong rescheduled it
			}
			if ss.awaiting {
				ss.mu.Unlock()
				s.close(ss) // ping timeout
				continue
			}
			ss.awaiting = true
			ok := ss.send("2")
			ss.mu.Unlock()
			if !ok {
				s.close(ss)
				continue
			}
			s.wheel.schedule(ss, now.Add(s.timeout))
		}
	}
}

// wheel holds sessions by the second they are due at, in slots of one
// second. A session rescheduled before it was due stays in its old slot
// too and is skipped there (session.next is later).
type wheel struct {
	mu    sync.Mutex
	slots [][]*session
	last  int64 // the last second handed out by due
}

func (w *wheel) init(n int) {
	w.slots = make([][]*session, n)
	w.last = time.Now().Unix()
}

func (w *wheel) schedule(ss *session, at time.Time) {
	sec := at.Unix()
	ss.mu.Lock()
	ss.next = sec
	ss.mu.Unlock()
	w.mu.Lock()
	if sec <= w.last {
		sec = w.last + 1
		ss.mu.Lock()
		ss.next = sec
		ss.mu.Unlock()
	}
	i := int(sec % int64(len(w.slots)))
	w.slots[i] = append(w.slots[i], ss)
	w.mu.Unlock()
}

// due returns the sessions of every second up to now not handed out yet.
func (w *wheel) due(now time.Time) []*session {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*session
	for ; w.last < now.Unix(); w.last++ {
		i := int((w.last + 1) % int64(len(w.slots)))
		out = append(out, w.slots[i]...)
		clear(w.slots[i]) // the backing array must not keep closed sessions
		w.slots[i] = w.slots[i][:0]
	}
	return out
}
