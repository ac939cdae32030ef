package sio

import (
	"encoding/json"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rtcio/rtcio-router/router/internal/sio/siotest"
)

// fixedStore is a SessionStore holding one session, as a store over Redis
// would find it, and recording what it was asked.
type fixedStore struct {
	pid  string
	sess StoredSession

	mu    sync.Mutex
	asked []string // "pid offset"
}

func (f *fixedStore) Restore(pid, offset string) (*StoredSession, error) {
	f.mu.Lock()
	f.asked = append(f.asked, pid+" "+offset)
	f.mu.Unlock()
	if pid != f.pid {
		return nil, nil
	}
	s := f.sess
	return &s, nil
}

// sessionDial opens a raw WebSocket for client name and sends CONNECT
// with auth.
func sessionDial(t *testing.T, host, name string, auth map[string]any) *websocket.Conn {
	t.Helper()
	u := "ws://" + host + "/socket.io/?EIO=4&transport=websocket&name=" + url.QueryEscape(name)
	c, _, err := (&websocket.Dialer{HandshakeTimeout: 3 * time.Second}).Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if m, err := siotest.Read(c, 3*time.Second); err != nil || !strings.HasPrefix(m, "0{") {
		t.Fatalf("open packet = %q, %v", m, err)
	}
	frame := "40"
	if auth != nil {
		b, _ := json.Marshal(auth)
		frame += string(b)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatal(err)
	}
	return c
}

// readFrame reads the next frame, failing the test after 3 s.
func readFrame(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	m, err := siotest.Read(c, 3*time.Second)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return m
}

// TestPrivateIDIsTheCONNECTPid pins Socket.PrivateID, which reads an
// unexported field of the library, to the pid the client receives in its
// CONNECT reply and presents to recover: a library upgrade that renames
// the field fails here rather than making every session unrecoverable.
func TestPrivateIDIsTheCONNECTPid(t *testing.T) {
	ts := tpStart(t, Config{Recovery: time.Minute, Sessions: &fixedStore{}})
	c := sessionDial(t, ts.host, "a", nil)
	var reply struct{ Sid, Pid string }
	m := readFrame(t, c)
	if err := json.Unmarshal([]byte(strings.TrimPrefix(m, "40")), &reply); err != nil || reply.Pid == "" {
		t.Fatalf("CONNECT reply %q: %v", m, err)
	}
	s := ts.socket(t, "a")
	if got := s.PrivateID(); got != reply.Pid || s.ID() != reply.Sid {
		t.Fatalf("PrivateID %q, ID %q; the client got pid %q, sid %q", got, s.ID(), reply.Pid, reply.Sid)
	}
}

// TestSessionStoreRecovery: a client presenting {pid, offset} gets the
// store's session: the missed events first, each with its offset as last
// argument, then CONNECT with the session's id and the same pid; the
// Handler's Recover sees the socket with ReplayedUpTo the last offset
// replayed, and Deliver sends later events with theirs. The library's own
// offsets are gone: an Emit carries none. An unknown pid is a new session.
func TestSessionStoreRecovery(t *testing.T) {
	store := &fixedStore{pid: "p1", sess: StoredSession{ID: "sid1", Rooms: []string{"r"}, Missed: []StoredEvent{
		{Offset: "5-0", Data: []byte(`["a",1]`)},
		{Offset: "5-1", Data: []byte(`["b"]`)},
	}}}
	ts := tpStart(t, Config{Recovery: time.Minute, Sessions: store})
	c := sessionDial(t, ts.host, "back", map[string]any{"pid": "p1", "offset": "4-0"})
	for _, want := range []string{`42["a",1,"5-0"]`, `42["b","5-1"]`, `40{"sid":"sid1","pid":"p1"}`} {
		if got := readFrame(t, c); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	s := ts.socket(t, "back")
	if s.ID() != "sid1" || s.ReplayedUpTo() != "5-1" {
		t.Fatalf("recovered socket %q replayed up to %q", s.ID(), s.ReplayedUpTo())
	}
	if err := s.Deliver([]byte(`["c",{"x":true}]`), "5-2"); err != nil {
		t.Fatal(err)
	}
	if got := readFrame(t, c); got != `42["c",{"x":true},"5-2"]` {
		t.Fatalf("delivered %q", got)
	}
	if err := s.Emit("d", "plain"); err != nil {
		t.Fatal(err)
	}
	if got := readFrame(t, c); got != `42["d","plain"]` {
		t.Fatalf("emitted %q", got)
	}
	// Room emits reach it in the session's rooms.
	if err := ts.tr.Broadcast([]string{"r"}, "", "e"); err != nil {
		t.Fatal(err)
	}
	if got := readFrame(t, c); got != `42["e"]` {
		t.Fatalf("room emit %q", got)
	}

	other := sessionDial(t, ts.host, "new", map[string]any{"pid": "nope", "offset": "1-0"})
	if m := readFrame(t, other); !strings.HasPrefix(m, "40{") || strings.Contains(m, "sid1") {
		t.Fatalf("unknown pid: CONNECT reply %q", m)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if want := []string{"p1 4-0", "nope 1-0"}; strings.Join(store.asked, ",") != strings.Join(want, ",") {
		t.Fatalf("store asked %v, want %v", store.asked, want)
	}
}

// TestAbortSendsNothing: Abort closes the connection without a socket.io
// DISCONNECT (which would keep a client from reconnecting), and the
// Handler hears a recoverable reason.
func TestAbortSendsNothing(t *testing.T) {
	ts := tpStart(t, Config{Recovery: time.Minute, Sessions: &fixedStore{}})
	c := sessionDial(t, ts.host, "a", nil)
	if m := readFrame(t, c); !strings.HasPrefix(m, "40{") {
		t.Fatalf("CONNECT reply %q", m)
	}
	ts.socket(t, "a").Abort()
	for {
		m, err := siotest.Read(c, 3*time.Second)
		if err != nil {
			break // closed
		}
		if strings.HasPrefix(m, "41") || strings.HasPrefix(m, "1") {
			t.Fatalf("Abort sent %q", m)
		}
	}
	if reason := ts.waitDisconnect(t, "a", 3*time.Second); !Recoverable(reason) {
		t.Fatalf("disconnect reason %q is not recoverable", reason)
	}
}
