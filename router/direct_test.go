package router_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rtcio/rtcio-router/router/internal/sio/siotest"
)

// rawPeer is a socket.io v4 client over a bare WebSocket, so a test can put
// several packets into one TCP write.
type rawPeer struct {
	t  *testing.T
	ws *websocket.Conn
}

func rawDial(t *testing.T, url string) *rawPeer {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(url, "http://", "ws://", 1)+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	p := &rawPeer{t: t, ws: ws}
	if m := p.next(); !strings.HasPrefix(m, "0{") {
		t.Fatalf("engine open: %q", m)
	}
	return p
}

// next returns the next engine.io message, answering pings.
func (p *rawPeer) next() string {
	p.t.Helper()
	for {
		_ = p.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := p.ws.ReadMessage()
		if err != nil {
			p.t.Fatalf("read: %v", err)
		}
		if string(b) == "2" {
			_ = p.ws.WriteMessage(websocket.TextMessage, []byte("3"))
			continue
		}
		return string(b)
	}
}

// connect sends CONNECT and returns the socket id.
func (p *rawPeer) connect() string {
	p.t.Helper()
	p.send("40")
	m := p.next()
	var hello struct{ Sid string }
	if err := json.Unmarshal([]byte(strings.TrimPrefix(m, "40")), &hello); err != nil || hello.Sid == "" {
		p.t.Fatalf("connect reply %q", m)
	}
	return hello.Sid
}

func (p *rawPeer) send(frames ...string) {
	p.t.Helper()
	for _, f := range frames {
		if err := p.ws.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
			p.t.Fatal(err)
		}
	}
}

func event(name string, data any) string {
	b, _ := json.Marshal([]any{name, data})
	return "42" + string(b)
}

// TestPipelinedEventsKeepOrder: a client that writes CONNECT, join-room and
// 200 relayed envelopes back to back has its first events queued by the
// library (the CONNECT is still settling) and the rest read straight into
// the dispatcher (transport_direct.go). No event may overtake an earlier
// one: the join must land before the envelopes (else they are refused as
// addressed to a stranger) and the envelopes arrive in order.
func TestPipelinedEventsKeepOrder(t *testing.T) {
	_, url := startRouter(t, builtinRules(t))
	for round := range 20 {
		room := fmt.Sprintf("pipe-%d", round)
		b := rawDial(t, url)
		bID := b.connect()
		b.send(event("join-room", map[string]any{"roomId": room, "name": "b"}))
		rawAwaitJoin(t, url, b, bID, room) // b's join first

		a := rawDial(t, url)
		frames := []string{"40", event("join-room", map[string]any{"roomId": room, "name": "a"})}
		const n = 200
		for i := range n {
			frames = append(frames, event("#rtcio:message", map[string]any{"target": bID, "data": map[string]any{"seq": i}}))
		}
		// One TCP write for all of them.
		var raw []byte
		for _, f := range frames {
			raw = append(raw, rawFrame(f)...)
		}
		if _, err := a.ws.NetConn().Write(raw); err != nil {
			t.Fatal(err)
		}
		if m := b.next(); !strings.HasPrefix(m, `42["user-connected"`) {
			t.Fatalf("round %d: b got %q before user-connected", round, m)
		}
		if m := b.next(); !strings.HasPrefix(m, `42["#rtcio:init-offer"`) {
			t.Fatalf("round %d: b got %q before init-offer", round, m)
		}
		for i := range n {
			m := b.next()
			want := fmt.Sprintf(`"data":{"seq":%d}`, i)
			if !strings.HasPrefix(m, `42["#rtcio:message"`) || !strings.Contains(m, want) {
				t.Fatalf("round %d: envelope %d: got %q", round, i, m)
			}
		}
		_ = a.ws.Close()
		_ = b.ws.Close()
	}
}

// rawAwaitJoin is awaitJoin for a rawPeer p (socket id pid) that has sent
// its join of room, as its only member so far, under the built-in rules: a
// witness joins too and hears of p whichever join came first, then drops
// its connection, and p reads everything up to the witness's
// user-disconnected. The join of p has then been handled, the witness is
// out of the room and p has nothing of it left unread.
func rawAwaitJoin(t *testing.T, url string, p *rawPeer, pid, room string) {
	t.Helper()
	w := rawDial(t, url)
	wid := w.connect()
	w.send(event("join-room", map[string]any{"roomId": room, "name": "witness"}))
	if name, arg := witnessEvent(t, w.next()); name != "user-connected" || arg["id"] != pid {
		t.Fatalf("the witness of a join got %s %v first", name, arg)
	}
	_ = w.ws.Close()
	for {
		switch name, arg := witnessEvent(t, p.next()); {
		case name == "user-disconnected" && arg["id"] == wid:
			return
		case name == "user-connected" && arg["id"] == wid, name == "#rtcio:peer-left" && arg["id"] == wid,
			name == "#rtcio:init-offer" && arg["source"] == wid:
		default:
			t.Fatalf("got %s %v while the witness of a join came and went", name, arg)
		}
	}
}

// witnessEvent decodes a socket.io EVENT message into its name and first
// argument (nil unless an object).
func witnessEvent(t *testing.T, m string) (string, map[string]any) {
	t.Helper()
	var args []any
	if !strings.HasPrefix(m, "42") || json.Unmarshal([]byte(m[2:]), &args) != nil || len(args) == 0 {
		t.Fatalf("not an event: %q", m)
	}
	name, _ := args[0].(string)
	var arg map[string]any
	if len(args) > 1 {
		arg, _ = args[1].(map[string]any)
	}
	return name, arg
}

// rawFrame is one masked client text frame.
func rawFrame(payload string) []byte { return siotest.MaskedFrame(true, 1, []byte(payload)) }
