package router_test

// Fidelity to the Node reference server (rtc.io-server on socket.io 4):
// behaviours a client can tell apart, checked with the official
// socket.io-client, and, where only the bytes on the wire show the
// difference, with a bare WebSocket peer beside it.

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rtcio/rtcio-router/internal/jsclient"
	"github.com/rtcio/rtcio-router/router"
)

// TestFidelityPeerLeftPerRoom: #rtcio:peer-left goes to each room of the
// leaving socket, as rtc.io-server sends it from its disconnecting handler,
// so a peer sharing two rooms with it hears it twice, exactly like the
// built-in rules' user-disconnected; both peer-lefts come before the
// disconnecting rules.
func TestFidelityPeerLeftPerRoom(t *testing.T) {
	for _, mode := range transportModes {
		if mode.name == "upgrade" {
			continue // the same events as websocket once upgraded
		}
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			_, url := startRouter(t, builtinRules(t))
			js := jsclient.Start(t)
			connect := func(name string) *jsclient.Client {
				c := js.Connect(name, url, mode.opts).WithT(t)
				c.WaitConnected()
				return c
			}
			alice, bob, carol := connect("alice"), connect("bob"), connect("carol")
			a := alice.ID()
			joinTogether(t, js, url, mode.opts, alice, bob, "r1", "r2")
			carol.Emit("join-room", map[string]any{"roomId": "r2", "name": "carol"})
			carol.WaitFor("user-connected", jsclient.DefaultTimeout)
			carol.WaitFor("user-connected", jsclient.DefaultTimeout)
			bob.WaitFor("#rtcio:init-offer", jsclient.DefaultTimeout)
			alice.WaitFor("#rtcio:init-offer", jsclient.DefaultTimeout)

			alice.Close()
			left := map[string]any{"id": a}
			bob.Expect(t, "#rtcio:peer-left", left)
			bob.Expect(t, "#rtcio:peer-left", left)
			bob.Expect(t, "user-disconnected", left)
			bob.Expect(t, "user-disconnected", left)
			bob.ExpectNothing(200 * time.Millisecond)
			carol.Expect(t, "#rtcio:peer-left", left)
			carol.Expect(t, "user-disconnected", left)
			carol.ExpectNothing(100 * time.Millisecond)
		})
	}
}

// TestFidelityPeerLeftJoinOrder: the per-room peer-lefts go out in the
// order the leaving socket joined its rooms, each to that room's other
// members in their join order, all before the disconnecting rules. Local
// records every delivery in order, which no pair of network clients can.
func TestFidelityPeerLeftJoinOrder(t *testing.T) {
	l, err := router.NewLocal(router.Options{RulesFile: "rtcio.yaml", Source: builtinRules(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"alice", "bob", "carol", "dave", "erin"} {
		if err := l.Connect(id, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	join := func(id, room string) {
		t.Helper()
		if _, _, err := l.Send(id, "join-room", []any{map[string]any{"roomId": room, "name": id}}, false); err != nil {
			t.Fatal(err)
		}
	}
	join("dave", "r2")
	join("alice", "r2") // alice joins r2 first...
	join("bob", "r1")
	join("dave", "r1")
	join("alice", "r1") // ...then r1
	join("carol", "r2")
	join("erin", "r3")
	join("alice", "r3")
	l.Deliveries()
	if err := l.Disconnect("alice", "client namespace disconnect"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range l.Deliveries() {
		got = append(got, d.Event+"→"+d.To)
	}
	want := []string{
		"#rtcio:peer-left→dave", "#rtcio:peer-left→carol", // r2
		"#rtcio:peer-left→bob", "#rtcio:peer-left→dave", // r1
		"#rtcio:peer-left→erin", // r3
		"user-disconnected→dave", "user-disconnected→carol",
		"user-disconnected→bob", "user-disconnected→dave",
		"user-disconnected→erin",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("deliveries:\n  got  %v\n  want %v", got, want)
	}
}

// TestFidelityPeerLeftAfterRecoveryWindow: with connection state recovery,
// a suspended socket's peers hear nothing during the window; when it ends
// they get the same per-room peer-lefts as for any disconnect.
func TestFidelityPeerLeftAfterRecoveryWindow(t *testing.T) {
	rt, url := startRouter(t, recoveryRules(t, "500ms"))
	_ = rt
	cut := newNetCut(t, url)
	js := jsclient.Start(t)
	alice := js.Connect("alice", cut.URL(), fastRedial(wsOnly)).WithT(t)
	bob := js.Connect("bob", url, wsOnly).WithT(t)
	a := alice.WaitConnected()
	bob.WaitConnected()
	joinTogether(t, js, url, wsOnly, alice, bob, "r1", "r2")
	cut.drop()
	alice.WaitDisconnect()
	waitHealth(t, url, 2, 1)
	bob.ExpectNothing(200 * time.Millisecond) // suspended: nothing yet
	left := map[string]any{"id": a}
	bob.Expect(t, "#rtcio:peer-left", left)
	bob.Expect(t, "#rtcio:peer-left", left)
	bob.Expect(t, "user-disconnected", left)
	bob.Expect(t, "user-disconnected", left)
	bob.ExpectNothing(200 * time.Millisecond)
	waitHealth(t, url, 1, 0)
}

// clientJSON are arguments as a JavaScript client writes them: keys in
// insertion order, nothing escaped that JSON.stringify leaves alone. Go's
// encoding would sort the keys and escape <, >, & and U+2028.
var clientJSON = []string{
	`{"roomId":"r1","mic":false,"cam":true,"id":"x","zeta":{"y":1,"b":[{"k":2,"a":1.5}]},"alpha":"<a&b>"}`,
	"{\"b\":1,\"a\":[null,{\"d\":\"é\",\"c\":\"\u2028\"}]}",
}

// rawEvent reads p's frames until the event name comes and returns that
// frame.
func rawEvent(p *rawPeer, name string) string {
	p.t.Helper()
	prefix := `42["` + name + `"`
	for {
		if m := p.next(); strings.HasPrefix(m, prefix) {
			return m
		}
	}
}

// TestFidelityForwardKeepsClientJSON: an event a rule forwards without a
// payload (media-state, stopScreenShare in the built-in rules) reaches its
// receivers as the official client sent it, key order included, as the
// Node server forwards it, every argument, whatever the sender's
// transport. A bare WebSocket peer reads the bytes.
func TestFidelityForwardKeepsClientJSON(t *testing.T) {
	for _, mode := range transportModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			_, url := startRouter(t, builtinRules(t))
			recv := rawDial(t, url)
			recv.connect()
			recv.send(event("join-room", map[string]any{"roomId": "r1", "name": "raw"}))
			js := jsclient.Start(t)
			sender := js.Connect("sender", url, mode.opts).WithT(t)
			sender.WaitConnected()
			if mode.name == "upgrade" {
				sender.WaitTransport("websocket")
			}
			sender.Emit("join-room", map[string]any{"roomId": "r1", "name": "sender"})
			rawEvent(recv, "user-connected") // both joined, whichever came first

			for round := range 3 { // the first events, and later ones
				sender.Emit("media-state", json.RawMessage(clientJSON[0]))
				if got, want := rawEvent(recv, "media-state"), `42["media-state",`+clientJSON[0]+`]`; got != want {
					t.Fatalf("round %d: media-state reached the peer as\n  %s\nwant, as sent,\n  %s", round, got, want)
				}
				sender.Emit("stopScreenShare", json.RawMessage(`{"streamId":"s-1","roomId":"r1"}`), json.RawMessage(clientJSON[1]), "third")
				want := `42["stopScreenShare",{"streamId":"s-1","roomId":"r1"},` + clientJSON[1] + `,"third"]`
				if got := rawEvent(recv, "stopScreenShare"); got != want {
					t.Fatalf("round %d: stopScreenShare reached the peer as\n  %s\nwant, as sent,\n  %s", round, got, want)
				}
			}
			// With an ack callback (the rules never answer it; the ack is
			// not forwarded).
			go func() { _, _ = sender.EmitWithAckTimeout(time.Second, "media-state", json.RawMessage(clientJSON[0])) }()
			if got, want := rawEvent(recv, "media-state"), `42["media-state",`+clientJSON[0]+`]`; got != want {
				t.Fatalf("with an ack: media-state reached the peer as\n  %s\nwant, as sent,\n  %s", got, want)
			}
		})
	}

	// Bytes that are not UTF-8 in a text frame are never forwarded as they
	// came (a browser's WebSocket fails on them): the decoded value, with
	// U+FFFD, is sent instead.
	t.Run("invalid-utf8", func(t *testing.T) {
		_, url := startRouter(t, builtinRules(t))
		recv := rawDial(t, url)
		recv.connect()
		recv.send(event("join-room", map[string]any{"roomId": "r1", "name": "raw"}))
		sender := rawDial(t, url)
		sender.connect()
		sender.send(event("join-room", map[string]any{"roomId": "r1", "name": "s"}))
		rawEvent(recv, "user-connected")
		if _, err := sender.ws.NetConn().Write(rawFrame("42[\"stopScreenShare\",{\"roomId\":\"r1\",\"x\":\"a\xffb\"}]")); err != nil {
			t.Fatal(err)
		}
		got := rawEvent(recv, "stopScreenShare")
		var args []any
		if !utf8.ValidString(got) || json.Unmarshal([]byte(strings.TrimPrefix(got, "42")), &args) != nil ||
			!jsclient.Equal(args, []any{"stopScreenShare", map[string]any{"roomId": "r1", "x": "a\uFFFDb"}}) {
			t.Fatalf("forwarded as %q", got)
		}
	})
}

// TestFidelityForwardReplayedAfterRecovery: a forwarded event sent to a
// suspended socket is kept by the library until the client recovers, long
// after the frame it was read from went back to the read-buffer pool and
// was reused by the sender's later events: it must still be replayed as
// the client sent it. The receiver is a bare WebSocket peer that recovers
// its session itself (CONNECT with its pid and last offset), so that the
// replayed bytes can be read.
func TestFidelityForwardReplayedAfterRecovery(t *testing.T) {
	_, url := startRouter(t, recoveryRules(t, "2m"))
	recv := rawDial(t, url)
	recv.send("40")
	var hello struct{ Sid, Pid string }
	if m := recv.next(); json.Unmarshal([]byte(strings.TrimPrefix(m, "40")), &hello) != nil || hello.Pid == "" {
		t.Fatalf("connect reply %q, want a sid and a pid", m)
	}
	recv.send(event("join-room", map[string]any{"roomId": "r1", "name": "raw"}))

	js := jsclient.Start(t)
	watcher := js.Connect("watcher", url, wsOnly).WithT(t)
	watcher.WaitConnected()
	watcher.Emit("join-room", map[string]any{"roomId": "r9", "name": "watcher"})
	sender := js.Connect("sender", url, wsOnly).WithT(t)
	sender.WaitConnected()
	sender.Emit("join-room", map[string]any{"roomId": "r9", "name": "sender"})
	watcher.WaitFor("#rtcio:init-offer", jsclient.DefaultTimeout)
	sender.Emit("join-room", map[string]any{"roomId": "r1", "name": "sender"})
	var args []any
	m := rawEvent(recv, "user-connected") // both joined, whichever came first
	if err := json.Unmarshal([]byte(strings.TrimPrefix(m, "42")), &args); err != nil || len(args) != 3 {
		t.Fatalf("user-connected %q: want an offset after the payload", m)
	}
	offset, _ := args[2].(string)

	_ = recv.ws.Close() // no close frame: a transport close, suspended
	waitHealth(t, url, 3, 1)
	sender.Emit("media-state", json.RawMessage(clientJSON[0]))
	// Later frames of the same length and other bytes, read into the
	// buffers the forwarded one was read into; the watcher sees them
	// handled.
	junk := strings.Repeat("z", len(clientJSON[0])-len(`{"roomId":"r9","q":"00"}`))
	for i := range 50 {
		sender.Emit("media-state", json.RawMessage(fmt.Sprintf(`{"roomId":"r9","q":"%02d%s"}`, i, junk)))
	}
	for range 50 {
		watcher.WaitFor("media-state", jsclient.DefaultTimeout)
	}

	back := rawDial(t, url)
	back.send(`40{"pid":"` + hello.Pid + `","offset":"` + offset + `"}`)
	// The library sends what was missed and the CONNECT reply in an order
	// of its own; the first media-state is the one sent to r1.
	recovered, got := false, ""
	for !recovered || got == "" {
		m := back.next()
		switch {
		case strings.HasPrefix(m, "40"):
			if !strings.Contains(m, `"sid":"`+hello.Sid+`"`) {
				t.Fatalf("recovery reply %q, want sid %s", m, hello.Sid)
			}
			recovered = true
		case strings.HasPrefix(m, `42["media-state"`) && got == "":
			got = m
		}
	}
	want := `42["media-state",` + clientJSON[0] + `,"`
	if !strings.HasPrefix(got, want) {
		t.Fatalf("replayed as\n  %s\nwant, as sent,\n  %s<offset>\"]", got, want)
	}
}

// TestFidelityTemplateNull: a YAML null in a payload template is sent as
// JSON null, where a field whose expression gives nil is left out (as
// JavaScript leaves out undefined): `{roomId: null}` reaches the client
// with roomId null.
func TestFidelityTemplateNull(t *testing.T) {
	src := []byte(`
rules:
  - event: ask
    do:
      - emit: answer
        to: sender
        payload:
          roomId: null
          name: data.missing
          list: [~, data.missing, 1]
          nested: { a: null, b: data.missing }
          empty:
      - emit: bare
        to: sender
        payload: null
      - ack: { ok: true, reason: null }
`)
	_, url := startRouter(t, src)
	js := jsclient.Start(t)
	c := js.Connect("c", url, wsOnly).WithT(t)
	c.WaitConnected()
	ack := c.EmitWithAck("ask", map[string]any{})
	c.Expect(t, "answer", map[string]any{"roomId": nil, "list": []any{nil, nil, 1}, "nested": map[string]any{"a": nil}, "empty": nil})
	c.Expect(t, "bare", nil)
	if !jsclient.Equal(ack, []any{map[string]any{"ok": true, "reason": nil}}) {
		t.Fatalf("ack %v, want [{ok: true, reason: null}]", ack)
	}
}

// joinTogether puts first and then second in each room, in that order (a
// witness proves first's join), and reads the presence events it causes.
func joinTogether(t *testing.T, js *jsclient.Process, url string, opts map[string]any, first, second *jsclient.Client, rooms ...string) {
	t.Helper()
	for _, room := range rooms {
		first.Emit("join-room", map[string]any{"roomId": room, "name": first.Name()})
		awaitJoin(t, js, url, opts, first, room)
		second.Emit("join-room", map[string]any{"roomId": room, "name": second.Name()})
		second.WaitFor("user-connected", jsclient.DefaultTimeout)
		first.WaitFor("#rtcio:init-offer", jsclient.DefaultTimeout)
	}
}
