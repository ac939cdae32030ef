package router

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// blPeer is a socket.io v4 client over a bare WebSocket whose reads the
// test drives itself: it reads only when told to, so it can stop reading.
type blPeer struct {
	t  *testing.T
	ws *websocket.Conn
	id string
}

// blDial connects a blPeer to base (http://host:port) and completes the
// socket.io CONNECT.
func blDial(t *testing.T, base string) *blPeer {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(base, "http://", "ws://", 1)+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	p := &blPeer{t: t, ws: ws}
	if m := p.next(); !strings.HasPrefix(m, "0{") {
		t.Fatalf("engine open: %q", m)
	}
	p.send("40")
	var hello struct{ Sid string }
	if m := p.next(); json.Unmarshal([]byte(strings.TrimPrefix(m, "40")), &hello) != nil || hello.Sid == "" {
		t.Fatalf("connect reply %q", m)
	}
	p.id = hello.Sid
	return p
}

// next returns the next engine.io message, answering pings; a read error
// (the server closed the connection) fails the test.
func (p *blPeer) next() string {
	p.t.Helper()
	for {
		_ = p.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := p.ws.ReadMessage()
		if err != nil {
			p.t.Fatalf("read: %v", err)
		}
		if string(b) == "2" {
			p.send("3")
			continue
		}
		return string(b)
	}
}

func (p *blPeer) send(msg string) {
	p.t.Helper()
	if err := p.ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		p.t.Fatal(err)
	}
}

func (p *blPeer) emit(name string, data any) {
	p.t.Helper()
	b, _ := json.Marshal([]any{name, data})
	p.send("42" + string(b))
}

// blSmallSendBuffer accepts connections with a 16 KiB socket send buffer
// (the kernel doubles it), as on a link whose buffers fill at once.
type blSmallSendBuffer struct{ *net.TCPListener }

func (l blSmallSendBuffer) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	if err := c.SetWriteBuffer(16 << 10); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// blBacklog returns what waits to be written to socket id.
func blBacklog(t *testing.T, r *Router, id string) func() (packets, bytes int64) {
	t.Helper()
	r.st.mu.RLock()
	c := r.st.socket(id)
	r.st.mu.RUnlock()
	if c == nil || c.s == nil {
		t.Fatalf("no socket %s", id)
	}
	return c.s.Backlog
}

// TestWSBacklogDeliveredAfterStall proves that the WebSocket writer's
// backlog (transport_ws.go: what is sent while the writer goroutine waits
// for a full socket buffer) is written out, whole and in order, once a
// slow client catches up. A receiver stops reading, on a server whose
// sockets have a small send buffer, while a room-mate relays 500 envelopes
// of 1 KiB (within its relay byte budget) to it: the kernel's buffers
// fill, and the rest waits in the transport's backlog (checked), under the
// slow-consumer caps and under the relay's congested-receiver rule (half
// of max_outgoing packets or bytes), so no envelope is dropped and nobody
// is disconnected. The receiver then reads again and must get every
// envelope, in order, on the same connection.
func TestWSBacklogDeliveredAfterStall(t *testing.T) {
	src, err := os.ReadFile("../rtcio.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// An acked event: its answer proves that every event the sender sent
	// before it was handled, so every envelope was handed to the receiver's
	// transport.
	src = append(src, "\n  - event: sync\n    do:\n      - ack: true\n"...)
	r, err := New(Options{RulesFile: "test.yaml", Source: src, Environ: map[string]string{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A small send buffer on the server's sockets: else the kernel takes
	// megabytes from a socket whose reader stopped (send buffer autotuning
	// on loopback took 3 MB here) and the transport's backlog is never
	// needed. (Shrinking the client's receive buffer instead, after the
	// connection is open, made loopback TCP crawl: 14 s for 300 KB.)
	ln := blSmallSendBuffer{tl.(*net.TCPListener)}
	srv := r.HTTPServer()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.Close(ctx)
		_ = srv.Close()
	})
	base := "http://" + tl.Addr().String()

	recv := blDial(t, base)
	recv.emit("join-room", map[string]any{"roomId": "r", "name": "recv"})
	recv.send(`420["sync"]`) // its ack proves the join was handled
	if m := recv.next(); m != "430[true]" {
		t.Fatalf("receiver got %q, want its ack", m)
	}
	sender := blDial(t, base)
	sender.emit("join-room", map[string]any{"roomId": "r", "name": "sender"})
	if m := recv.next(); !strings.HasPrefix(m, `42["user-connected",{"id":"`+sender.id+`"`) {
		t.Fatalf("receiver got %q, want the sender's user-connected", m)
	}
	if m := recv.next(); !strings.HasPrefix(m, `42["#rtcio:init-offer",{"source":"`+sender.id+`"`) {
		t.Fatalf("receiver got %q, want the sender's init-offer", m)
	}
	unsent := blBacklog(t, r, recv.id)

	// The receiver reads nothing from here on, until told to.
	const n, size = 500, 1 << 10
	pad := strings.Repeat("x", size)
	for i := range n {
		sender.emit("#rtcio:message", map[string]any{"target": recv.id, "data": map[string]any{"seq": i, "pad": pad}})
	}
	sender.send(`421["sync"]`)
	for {
		m := sender.next()
		if m == "431[true]" {
			break
		}
		if !strings.HasPrefix(m, `42["user-connected"`) {
			t.Fatalf("sender got %q while waiting for its ack", m)
		}
	}

	unsentPkts, unsentBytes := unsent()
	t.Logf("while stalled: unsent %d packets, %d bytes", unsentPkts, unsentBytes)
	if unsentPkts == 0 {
		t.Fatal("nothing waits to be written: the kernel took everything, so this test proves nothing")
	}
	if half := int64(r.Rules().Server.MaxOutgoing / 2); unsentPkts > half {
		t.Fatalf("%d packets unsent: past the congested-receiver threshold %d, envelopes may have been dropped", unsentPkts, half)
	}

	// Resume: every envelope, in order, on the same connection.
	for i := range n {
		m := recv.next()
		var args []json.RawMessage
		if !strings.HasPrefix(m, "42") || json.Unmarshal([]byte(m[2:]), &args) != nil || len(args) != 2 {
			t.Fatalf("envelope %d: got %.200q", i, m)
		}
		var env struct {
			Source, Target string
			Data           struct {
				Seq int
				Pad string
			}
		}
		if string(args[0]) != `"#rtcio:message"` || json.Unmarshal(args[1], &env) != nil {
			t.Fatalf("envelope %d: got %.200q", i, m)
		}
		if env.Data.Seq != i || env.Source != sender.id || env.Target != recv.id || env.Data.Pad != pad {
			t.Fatalf("envelope %d: got seq %d from %s to %s (%d bytes of padding)", i, env.Data.Seq, env.Source, env.Target, len(env.Data.Pad))
		}
	}
	// Still the same live session: the connection answers an event.
	recv.send(`427["sync"]`)
	if m := recv.next(); m != "437[true]" {
		t.Fatalf("after the backlog: got %.200q, want the ack", m)
	}
	// The writer subtracts what it wrote just after the write returns.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		p, b := unsent()
		if p == 0 && b == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the backlog: %d packets, %d bytes still counted unsent", p, b)
		}
	}
}
