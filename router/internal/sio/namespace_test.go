package sio

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rtcio/rtcio-router/router/internal/sio/siotest"
)

// nsHandler is a second namespace's Handler: it admits clients whose auth
// carries ok: true, answers "ping" with an emit and records what it saw.
type nsHandler struct {
	mu     sync.Mutex
	seen   []string
	closed chan string
}

func (h *nsHandler) log(s string) { h.mu.Lock(); h.seen = append(h.seen, s); h.mu.Unlock() }

func (h *nsHandler) Admit(s *Socket) (any, error) {
	if ok, _ := s.Auth()["ok"].(bool); !ok {
		return nil, errors.New("invalid credentials")
	}
	return "admitted", nil
}
func (h *nsHandler) Connect(s *Socket) {
	h.log("connect " + s.Namespace() + " " + s.Admission().(string) + " " + s.Transport())
	if s.ClientID() == "" || s.Handshake().Issued == 0 {
		h.log("no handshake")
	}
}
func (h *nsHandler) Recover(s *Socket) bool { h.Connect(s); return true }
func (h *nsHandler) Event(s *Socket, ev Event) {
	h.log("event " + ev.Name)
	if ev.Name == "ping" {
		_ = s.Emit("pong", "x")
	}
}
func (h *nsHandler) Disconnect(s *Socket, reason string) { h.closed <- reason }
func (h *nsHandler) KeepSession(string) bool             { return false }

// readUntil reads c until a message with prefix arrives, answering pings.
func readUntil(t *testing.T, c *websocket.Conn, prefix string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, err := siotest.Read(c, time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for %q: %v", prefix, err)
		}
		if m == "2" {
			_ = c.WriteMessage(websocket.TextMessage, []byte("3"))
			continue
		}
		if strings.HasPrefix(m, prefix) {
			return m
		}
	}
}

// A second namespace reaches its own Handler, on a connection it shares
// with the main namespace, whose events still reach the server's Handler.
func TestNamespaceOwnHandler(t *testing.T) {
	ts := tpStart(t, Config{})
	h := &nsHandler{closed: make(chan string, 1)}
	if err := ts.tr.Namespace("/admin", h); err != nil {
		t.Fatal(err)
	}
	if err := ts.tr.Namespace("/admin", h); err == nil {
		t.Fatal("a namespace served twice must be refused")
	}
	if err := ts.tr.Namespace("/", h); err == nil {
		t.Fatal("the main namespace must be refused")
	}

	c := siotest.WSConnect(t, ts.host, "main") // "/" connected
	send := func(frame string) {
		t.Helper()
		if err := c.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
			t.Fatal(err)
		}
	}
	send(`40/admin,{"ok":false}`)
	if m := readUntil(t, c, "44/admin,"); !strings.Contains(m, "invalid credentials") {
		t.Fatalf("refusal = %q", m)
	}
	send(`40/nowhere,`)
	readUntil(t, c, "44/nowhere,")
	send(`40/admin,{"ok":true}`)
	readUntil(t, c, "40/admin,")
	send(`42/admin,["ping"]`)
	if m := readUntil(t, c, "42/admin,"); m != `42/admin,["pong","x"]` {
		t.Fatalf("pong = %q", m)
	}
	tpEcho(t, c, "main still works") // the main namespace, direct path included
	send(`41/admin,`)
	select {
	case reason := <-h.closed:
		if reason != ReasonGoodbye {
			t.Fatalf("reason %q", reason)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no Disconnect for /admin")
	}
	tpEcho(t, c, "main after admin left")
	h.mu.Lock()
	defer h.mu.Unlock()
	if got := strings.Join(h.seen, "|"); got != "connect /admin admitted websocket|event ping" {
		t.Fatalf("the /admin Handler saw %q", got)
	}
	if ts.handled.Load() != 2 {
		t.Fatalf("the main Handler handled %d events, want the 2 echoes", ts.handled.Load())
	}
	if total, polling := ts.tr.Clients(); total != 1 || polling != 0 {
		t.Fatalf("Clients() = %d, %d", total, polling)
	}
}
