package router_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rtcio/rtcio-router/internal/jsclient"
)

// rawSocket is a hand-driven socket.io v4 connection over WebSocket, for
// sending frames no well-behaved client would.
type rawSocket struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialRaw(t *testing.T, url string) *rawSocket {
	t.Helper()
	wsURL := strings.Replace(url, "http://", "ws://", 1) + "/socket.io/?EIO=4&transport=websocket"
	ws, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	r := &rawSocket{t: t, ws: ws}
	if msg := r.read(); !strings.HasPrefix(msg, "0{") {
		t.Fatalf("raw: want engine open packet, got %q", msg)
	}
	if err := r.send("40"); err != nil {
		t.Fatal(err)
	}
	if msg := r.read(); !strings.HasPrefix(msg, "40{") {
		t.Fatalf("raw: want socket.io connect, got %q", msg)
	}
	return r
}

// send writes one text frame. The server may close the connection while a
// large frame is still being written, so a write error is returned, not
// fatal.
func (r *rawSocket) send(frame string) error {
	return r.ws.WriteMessage(websocket.TextMessage, []byte(frame))
}

func (r *rawSocket) read() string {
	r.t.Helper()
	_ = r.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := r.ws.ReadMessage()
	if err != nil {
		r.t.Fatalf("raw read: %v", err)
	}
	return string(msg)
}

// closed reports whether the server closed the connection within d,
// skipping pings and other frames.
func (r *rawSocket) closed(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		_ = r.ws.SetReadDeadline(deadline)
		if _, _, err := r.ws.ReadMessage(); err != nil {
			return !strings.Contains(err.Error(), "timeout")
		}
	}
}

// checkSeedStillWorks runs a fresh two-peer join and requires the exact
// reference behaviour: whatever came before left the server intact.
func checkSeedStillWorks(t *testing.T, js *jsclient.Process, url, room string) {
	t.Helper()
	a, b := joinPair(t, js, url, map[string]any{"transports": []string{"websocket"}}, room)
	a.Emit("#rtcio:message", map[string]any{"target": b.ID(), "data": map[string]any{"candidate": ""}})
	b.Expect(t, "#rtcio:message", map[string]any{"source": a.ID(), "target": b.ID(), "data": map[string]any{"candidate": ""}})
}

// TestBadPayloadsAreDropped sends every shape of bad payload to every
// event through the official client: nothing is answered, nobody else
// hears anything, the sending socket stays usable, and the server behaves
// exactly right afterwards.
func TestBadPayloadsAreDropped(t *testing.T) {
	_, url := startRouter(t, builtinRules(t))
	js := jsclient.Start(t)
	bad := js.Connect("bad", url, nil)
	bad.WaitConnected()
	peer := js.Connect("peer", url, nil)
	peer.WaitConnected()
	peer.Emit("join-room", map[string]any{"roomId": "victim", "name": "peer"})

	// Nesting within the limit is an ordinary (invalid) payload; beyond
	// it, see below.
	deep := any("x")
	for i := 0; i < 20; i++ {
		deep = []any{deep}
	}
	payloads := []any{nil, 0, 42.5, "", "victim", true, []any{}, []any{"victim"}, map[string]any{},
		map[string]any{"roomId": nil}, map[string]any{"roomId": 7}, map[string]any{"roomId": map[string]any{"a": 1}},
		map[string]any{"roomId": []any{"victim"}}, map[string]any{"roomId": ""}, deep, map[string]any{"roomId": deep}}
	events := []string{"join-room", "media-state", "stopScreenShare", "#rtcio:message", "#rtcio:init-offer",
		"#rtcio:peer-left", "#rtcio:offer", "unknown-event", "connection", "__proto__", ""}
	for _, ev := range events {
		bad.Emit(ev)
		for _, p := range payloads {
			bad.Emit(ev, p)
			bad.Emit(ev, p, p, p)
		}
	}
	bad.ExpectNothing(300 * time.Millisecond)
	peer.ExpectNothing(50 * time.Millisecond)
	if !bad.Connected() {
		t.Fatal("bad payloads disconnected the socket; they should only be dropped")
	}
	// The same socket still works normally.
	bad.Emit("join-room", map[string]any{"roomId": "victim", "name": "reformed"})
	bad.Expect(t, "user-connected", map[string]any{"id": peer.ID(), "name": "peer"})
	peer.Expect(t, "user-connected", map[string]any{"id": bad.ID(), "name": "reformed"})
	peer.Expect(t, "#rtcio:init-offer", map[string]any{"source": bad.ID()})

	// Absurd nesting is refused at the protocol level: that connection is
	// closed, everyone else carries on.
	abuser := js.Connect("abuser", url, map[string]any{"reconnection": false})
	abuser.WaitConnected()
	for i := 0; i < 200; i++ {
		deep = []any{deep}
	}
	abuser.Emit("join-room", map[string]any{"roomId": deep})
	abuser.WaitDisconnect()
	peer.ExpectNothing(100 * time.Millisecond)
	checkSeedStillWorks(t, js, url, "after-payloads")
}

// TestMalformedFramesCloseOnlyTheirConnection sends frames that break the
// protocol over a raw WebSocket: each closes that connection only, the
// server stays up, a peer connected meanwhile keeps its session, and a
// normal join afterwards behaves exactly right.
func TestMalformedFramesCloseOnlyTheirConnection(t *testing.T) {
	_, url := startRouter(t, builtinRules(t))
	js := jsclient.Start(t)
	bystander := js.Connect("bystander", url, map[string]any{"transports": []string{"websocket"}})
	bystander.WaitConnected()
	bystanderID := bystander.ID()

	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	huge := `42["join-room",{"roomId":"` + strings.Repeat("x", 70<<10) + `"}]`
	frames := []string{"42", "421", "42[]", "42[1]", "42{}", `42"x"`, "42null", "4", "2", "9", "",
		"42[", `42["join-room"`, `451-["join-room",{"_placeholder":true,"num":0}]`, `43["x"]`, "431[]",
		"42" + deep, huge, "\x00\xff", `40{"x":1}`, "41", `44{"message":"x"}`,
		`42["disconnecting"]`, `42["connect"]`, `42["disconnect","x"]`, `42["#rtcio:peer-left",{"id":"x"}]`}
	for i, f := range frames {
		t.Run(fmt.Sprintf("frame%02d", i), func(t *testing.T) {
			raw := dialRaw(t, url)
			_ = raw.send(f)
			// Either the server closes the connection or it drops the frame;
			// what it must not do is die, hang or answer with garbage.
			raw.closed(300 * time.Millisecond)
		})
	}
	t.Run("binary frame", func(t *testing.T) {
		raw := dialRaw(t, url)
		if err := raw.ws.WriteMessage(websocket.BinaryMessage, []byte{4, 0, 1, 2}); err != nil {
			t.Fatal(err)
		}
		if !raw.closed(2 * time.Second) {
			t.Fatal("binary frame was not refused")
		}
	})
	t.Run("oversized frame", func(t *testing.T) {
		raw := dialRaw(t, url)
		_ = raw.send(huge)
		if !raw.closed(2 * time.Second) {
			t.Fatal("frame over max_payload was not refused")
		}
	})
	if !bystander.Connected() || bystander.ID() != bystanderID {
		t.Fatal("a bystander lost its session")
	}
	checkSeedStillWorks(t, js, url, "after-frames")
}
