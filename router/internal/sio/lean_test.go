package sio

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rtcio/rtcio-router/router/internal/sio/siotest"
)

func TestCutFrame(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 70000)
	for _, tc := range []struct {
		name    string
		in      []byte
		limit   int64
		status  int
		payload string
		op      byte
	}{
		{"short text", siotest.MaskedFrame(true, opText, []byte("42[\"a\"]")), 1 << 20, frameOK, `42["a"]`, opText},
		{"empty", siotest.MaskedFrame(true, opText, nil), 1 << 20, frameOK, "", opText},
		{"16-bit length", siotest.MaskedFrame(true, opText, long[:300]), 1 << 20, frameOK, string(long[:300]), opText},
		{"64-bit length", siotest.MaskedFrame(true, opText, long), 1 << 20, frameOK, string(long), opText},
		{"over the limit", siotest.MaskedFrame(true, opText, long), 65536, frameTooBig, "", 0},
		{"unmasked", []byte{0x81, 0x01, 'a'}, 1 << 20, frameBad, "", 0},
		{"reserved bit", append([]byte{0xC1}, siotest.MaskedFrame(true, opText, []byte("a"))[1:]...), 1 << 20, frameBad, "", 0},
		{"long control frame", siotest.MaskedFrame(true, 0x9, long[:126]), 1 << 20, frameBad, "", 0},
		{"fragmented control frame", siotest.MaskedFrame(false, 0x9, []byte("p")), 1 << 20, frameBad, "", 0},
		{"continuation", siotest.MaskedFrame(false, 0x0, []byte("part")), 1 << 20, frameOK, "part", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]byte(nil), tc.in...)
			f, rest, st := cutFrame(in, tc.limit)
			if st != tc.status {
				t.Fatalf("status %d, want %d", st, tc.status)
			}
			if st != frameOK {
				return
			}
			if string(f.payload) != tc.payload || f.op != tc.op || len(rest) != 0 {
				t.Fatalf("frame op %x payload %.20q rest %d", f.op, f.payload, len(rest))
			}
		})
	}
	// Every prefix of a frame is incomplete, and leaves the bytes as they
	// were, so the poller can cut again when the rest arrives.
	whole := siotest.MaskedFrame(true, opText, long[:300])
	for i := range len(whole) {
		part := append([]byte(nil), whole[:i]...)
		if _, _, st := cutFrame(part, 1<<20); st != frameIncomplete {
			t.Fatalf("prefix of %d bytes: status %d", i, st)
		}
		if !bytes.Equal(part, whole[:i]) {
			t.Fatalf("prefix of %d bytes was changed", i)
		}
	}
	// Two frames in one read.
	two := append(siotest.MaskedFrame(true, opText, []byte("one")), siotest.MaskedFrame(true, opText, []byte("two"))...)
	f, rest, _ := cutFrame(two, 1<<20)
	g, rest, _ := cutFrame(rest, 1<<20)
	if string(f.payload) != "one" || string(g.payload) != "two" || len(rest) != 0 {
		t.Fatalf("two frames: %q %q rest %d", f.payload, g.payload, len(rest))
	}
}

// rawLean is a client on a bare TCP connection, writing frames by hand:
// what a browser may do (any split across TCP segments, fragmented
// messages) and what gorilla's client never does.
type rawLean struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader // nc's reads, after the upgrade response
}

func dialRawLean(t *testing.T, host, name string) *rawLean {
	t.Helper()
	nc, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	req := "GET /socket.io/?EIO=4&transport=websocket&name=" + name + " HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("Sec-WebSocket-Accept %q", got) // RFC 6455's own example
	}
	return &rawLean{t: t, nc: nc, br: br}
}

// read returns the next text message from the server.
func (c *rawLean) read() string {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [2]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		c.t.Fatalf("read: %v", err)
	}
	n := int(hdr[1] & 0x7F)
	switch n {
	case 126:
		var l [2]byte
		_, _ = io.ReadFull(c.br, l[:])
		n = int(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		_, _ = io.ReadFull(c.br, l[:])
		n = int(binary.BigEndian.Uint64(l[:]))
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c.br, b); err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if hdr[0]&0x0F != opText {
		return fmt.Sprintf("op%x:%s", hdr[0]&0x0F, b)
	}
	return string(b)
}

// write writes b in pieces of at most step bytes, pausing between them so
// that each arrives in a read of its own.
func (c *rawLean) write(b []byte, step int) {
	c.t.Helper()
	for len(b) > 0 {
		n := min(step, len(b))
		if _, err := c.nc.Write(b[:n]); err != nil {
			c.t.Fatal(err)
		}
		b = b[n:]
		if len(b) > 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// TestLeanWire: what a client reads from a lean session is what the
// library writes: the open packet, the CONNECT reply, acks; frames split
// at every byte and fragmented messages are read whole; a namespace
// nobody serves is refused as the library refuses it.
func TestLeanWire(t *testing.T) {
	if !tpLean {
		t.Skip("RTCIO_LEAN_WEBSOCKET=0")
	}
	ts := tpStart(t, Config{MaxPayload: 4321, PingInterval: 7 * time.Second, PingTimeout: 3 * time.Second})
	c := dialRawLean(t, ts.host, "raw")
	open := c.read()
	var o map[string]any
	if !strings.HasPrefix(open, "0{") || json.Unmarshal([]byte(open[1:]), &o) != nil {
		t.Fatalf("open packet %q", open)
	}
	if o["pingInterval"] != 7000.0 || o["pingTimeout"] != 3000.0 || o["maxPayload"] != 4321.0 ||
		fmt.Sprint(o["upgrades"]) != "[]" || len(o["sid"].(string)) != 20 {
		t.Fatalf("open packet %v", o)
	}
	c.write(siotest.MaskedFrame(true, opText, []byte("40")), 1) // one byte per read
	if m := c.read(); !strings.HasPrefix(m, `40{"sid":"`) {
		t.Fatalf("CONNECT reply %q", m)
	}
	s := ts.socket(t, "raw")
	if s.lean == nil || s.Transport() != "websocket" || s.ClientID() != o["sid"] {
		t.Fatalf("socket lean=%v transport %q client %q", s.lean != nil, s.Transport(), s.ClientID())
	}
	// An event in three fragments, a ping frame between two of them.
	ev := []byte(`421["echo","fragmented"]`)
	msg := append(siotest.MaskedFrame(false, opText, ev[:5]), siotest.MaskedFrame(true, 0x9, []byte("hi"))...)
	msg = append(msg, siotest.MaskedFrame(false, 0x0, ev[5:10])...)
	msg = append(msg, siotest.MaskedFrame(true, 0x0, ev[10:])...)
	c.write(msg, 3)
	if m := c.read(); m != "opa:hi" {
		t.Fatalf("pong %q", m)
	}
	if m := c.read(); m != `431["fragmented"]` {
		t.Fatalf("ack %q", m)
	}
	c.write(siotest.MaskedFrame(true, opText, []byte("40/nope,")), 64)
	if m := c.read(); m != `44/nope,{"message":"Invalid namespace"}` {
		t.Fatalf("unknown namespace: %q", m)
	}
	// The client leaves on purpose: DISCONNECT then close.
	c.write(siotest.MaskedFrame(true, opText, []byte("41")), 64)
	if r := ts.waitDisconnect(t, "raw", 5*time.Second); r != ReasonGoodbye {
		t.Fatalf("disconnect reason %q", r)
	}
}

// TestLeanRefusals: a lean session closes on what the library closes on,
// with the library's reasons.
func TestLeanRefusals(t *testing.T) {
	if !tpLean {
		t.Skip("RTCIO_LEAN_WEBSOCKET=0")
	}
	ts := tpStart(t, Config{MaxPayload: 1024})
	for _, tc := range []struct {
		name, reason string
		frame        []byte
	}{
		{"binary", reasonForcedClose, siotest.MaskedFrame(true, opBinary, []byte{1, 2, 3})},
		{"badjson", reasonForcedClose, siotest.MaskedFrame(true, opText, []byte(`42["a",`))},
		{"toolarge", reasonTransportError, siotest.MaskedFrame(true, opText, bytes.Repeat([]byte("4"), 2048))},
		{"unmasked", reasonTransportError, []byte{0x81, 0x02, '4', '2'}},
		{"enginegarbage", "parse error", siotest.MaskedFrame(true, opText, []byte("9"))},
		{"connecttwice", reasonForcedClose, siotest.MaskedFrame(true, opText, []byte("40"))},
		{"closeframe", reasonTransportClose, siotest.MaskedFrame(true, 0x8, []byte{0x03, 0xE8})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRawLean(t, ts.host, tc.name)
			c.read()
			c.write(siotest.MaskedFrame(true, opText, []byte("40")), 64)
			c.read()
			c.write(tc.frame, 1<<20)
			if r := ts.waitDisconnect(t, tc.name, 5*time.Second); r != tc.reason {
				t.Fatalf("disconnect reason %q, want %q", r, tc.reason)
			}
		})
	}
	tpFreshClientWorks(t, ts)
}

// TestLeanBackpressure: a client that emits faster than its handler runs
// is slowed down (reads pause), never dropped, and every event is handled
// in order once the handler is free.
func TestLeanBackpressure(t *testing.T) {
	if !tpLean {
		t.Skip("RTCIO_LEAN_WEBSOCKET=0")
	}
	ts := tpStart(t, Config{MaxPending: 16})
	c := siotest.WSConnect(t, ts.host, "eager")
	ts.socket(t, "eager")
	const n = 500
	frames := [][]byte{[]byte(`42["block"]`)}
	for i := range n {
		frames = append(frames, fmt.Appendf(nil, `42%d["echo",%d]`, i, i))
	}
	done := make(chan error, 1)
	go func() {
		for _, f := range frames {
			if err := c.WriteMessage(websocket.TextMessage, f); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	time.Sleep(300 * time.Millisecond)
	s := ts.socket(t, "eager")
	if p := ts.tpPending(s); p > leanQueueMax {
		t.Fatalf("%d events queued behind the blocked handler, want at most %d", p, leanQueueMax)
	}
	close(ts.gate)
	for i := range n {
		want := fmt.Sprintf("43%d[%d]", i, i)
		for {
			m, err := siotest.Read(c, 5*time.Second)
			if err != nil {
				t.Fatalf("ack %d: %v", i, err)
			}
			if m == "2" {
				continue
			}
			if m != want {
				t.Fatalf("got %q, want %q", m, want)
			}
			break
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, gone := ts.disconnects.Load("eager"); gone {
		t.Fatal("the eager client was dropped")
	}
}

// TestLeanMixedAudience: Broadcast and Send reach lean sockets and the
// library's (a polling client) alike, each once, minus the excepted.
func TestLeanMixedAudience(t *testing.T) {
	if !tpLean {
		t.Skip("RTCIO_LEAN_WEBSOCKET=0")
	}
	ts := tpStart(t, Config{})
	a := siotest.WSConnect(t, ts.host, "a")
	b := siotest.WSConnect(t, ts.host, "b")
	sid := siotest.PollHandshake(t, ts.base, "", "p")
	if code, body := siotest.PollPost(t, ts.base, sid, "40", false); code != http.StatusOK {
		t.Fatalf("CONNECT: %d %q", code, body)
	}
	sa, sb, sp := ts.socket(t, "a"), ts.socket(t, "b"), ts.socket(t, "p")
	if sa.lean == nil || sp.lean != nil {
		t.Fatal("want a lean and a library socket")
	}
	for _, s := range []*Socket{sa, sb, sp} {
		s.Join("r1")
		s.Join("r2")
	}
	if err := ts.tr.Broadcast([]string{"r1", "r2"}, sb.ID(), "hello", 1); err != nil {
		t.Fatal(err)
	}
	if err := ts.tr.Send(Audience{Sockets: []string{sb.ID(), sp.ID()}, ExceptRooms: []string{"none"}}, "direct", 2); err != nil {
		t.Fatal(err)
	}
	sa.Leave("r1")
	if err := ts.tr.Broadcast([]string{"r1"}, "", "after-leave", 3); err != nil {
		t.Fatal(err)
	}
	expect := func(c *websocket.Conn, who string, want ...string) {
		t.Helper()
		for _, w := range want {
			for {
				m, err := siotest.Read(c, 3*time.Second)
				if err != nil {
					t.Fatalf("%s: waiting for %s: %v", who, w, err)
				}
				if m == "2" {
					continue
				}
				if m != w {
					t.Fatalf("%s: got %s, want %s", who, m, w)
				}
				break
			}
		}
	}
	expect(a, "a", `42["hello",1]`)
	expect(b, "b", `42["direct",2]`, `42["after-leave",3]`)
	if m, err := siotest.Read(a, 300*time.Millisecond); err == nil {
		t.Fatalf("a got %q after leaving r1", m)
	}
	var polled string
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && strings.Count(polled, "42[") < 3; {
		_, _, body := siotest.PollGetSid(t, ts.base, sid, "")
		polled += body
	}
	for _, w := range []string{`42["hello",1]`, `42["direct",2]`, `42["after-leave",3]`} {
		if strings.Count(polled, w) != 1 {
			t.Fatalf("polling client: %q, want %s once", polled, w)
		}
	}
}

// TestLeanIdleHoldsNoGoroutine: an idle lean session costs no goroutine
// (the point of lean sessions: bench/README.md, memory per idle socket).
func TestLeanIdleHoldsNoGoroutine(t *testing.T) {
	if !tpLean {
		t.Skip("RTCIO_LEAN_WEBSOCKET=0")
	}
	ts := tpStart(t, Config{})
	tpFreshClientWorks(t, ts) // the server's own goroutines are up
	time.Sleep(100 * time.Millisecond)
	before := runtime.NumGoroutine()
	const n = 50
	for i := range n {
		c := siotest.WSConnect(t, ts.host, fmt.Sprint("idle", i))
		tpEcho(t, c, "x")
	}
	// The client side holds a goroutine or so per connection (the test's
	// gorilla conns hold none; net/http's server side for the handshake
	// returns after the hijack).
	deadline := time.Now().Add(5 * time.Second)
	for {
		extra := runtime.NumGoroutine() - before
		if extra < n/5 {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines more for %d idle lean sessions:\n%s", extra, n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		total, polling := ts.tr.Clients()
		if total == n && polling == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Clients() = %d, %d; want %d, 0", total, polling, n)
		}
	}
}

// FuzzCutFrame: whatever bytes a client sends, cutting frames never panics,
// always makes progress or waits for more, and never reads past the input.
func FuzzCutFrame(f *testing.F) {
	f.Add(siotest.MaskedFrame(true, opText, []byte(`42["a"]`)), int64(1024))
	f.Add(append(siotest.MaskedFrame(false, opText, []byte("4")), siotest.MaskedFrame(true, 0, []byte("2[]"))...), int64(1024))
	f.Add([]byte{0x81, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0x10}, int64(65536))
	f.Add([]byte{0x89, 0xFE, 0, 200}, int64(65536))
	f.Fuzz(func(t *testing.T, b []byte, limit int64) {
		if limit < 0 {
			limit = -limit
		}
		for len(b) > 0 {
			fr, rest, st := cutFrame(b, limit)
			if st != frameOK {
				return
			}
			if len(rest) >= len(b) || int64(len(fr.payload)) > limit {
				t.Fatalf("no progress or payload over the limit: %d -> %d, payload %d", len(b), len(rest), len(fr.payload))
			}
			b = rest
		}
	})
}

// The heartbeat wheel keeps each connection in one slot: rescheduling
// moves it, removing takes it out, and an ended connection is never held
// until its slot comes round (its memory goes with it).
func TestLeanWheelSlots(t *testing.T) {
	w := &leanWheel{tick: 10 * time.Millisecond, quit: make(chan struct{}), slots: make([][]*leanConn, 16)}
	now := time.Unix(1000, 0)
	w.last = now.UnixNano() / int64(w.tick)
	conns := make([]*leanConn, 5)
	for i := range conns {
		conns[i] = &leanConn{wheelSlot: -1}
		w.schedule(conns[i], now.Add(time.Duration(i+1)*w.tick))
	}
	w.schedule(conns[0], now.Add(8*w.tick)) // moved later
	w.remove(conns[2])                      // ended
	held := 0
	for _, s := range w.slots {
		held += len(s)
	}
	if held != 4 {
		t.Fatalf("%d entries in the wheel, want 4", held)
	}
	var got []*leanConn
	// A connection scheduled at a time is due at the tick after it.
	for _, d := range w.take(now.Add(6 * w.tick)) {
		if d.lc.due == d.tick {
			got = append(got, d.lc)
		}
	}
	if len(got) != 3 || got[0] != conns[1] || got[1] != conns[3] || got[2] != conns[4] {
		t.Fatalf("due by tick 6: %v, want conns 1, 3, 4", got)
	}
	if d := w.take(now.Add(9 * w.tick)); len(d) != 1 || d[0].lc != conns[0] {
		t.Fatalf("due by tick 9: %v, want conn 0", d)
	}
	for _, s := range w.slots {
		if len(s) != 0 {
			t.Fatal("wheel not empty")
		}
	}
}
