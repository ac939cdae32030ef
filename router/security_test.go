package router_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/jsclient"
	"github.com/rtcio/rtcio-router/router"
)

// TestRoomNamedLikeSocketID is the attack of a client that joins a room
// named like another socket's id to read what is addressed to that socket:
// relayed SDP, its `to: sender` events, and, in the built-in rules, the
// presence events of the room (which would make the victim start a call with
// the attacker). Application rooms and socket ids are disjoint for every
// config, with connection state recovery off and on, and with the victim
// suspended.
func TestRoomNamedLikeSocketID(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  func(testing.TB) []byte
	}{
		{"builtin", builtinRules},
		{"recovery", func(t testing.TB) []byte { return recoveryRules(t, "2m") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, url := startRouter(t, tc.src(t))
			js := jsclient.Start(t)
			alice, bob := joinPair(t, js, url, wsOnly, "r")
			mallory := js.Connect("mallory", url, wsOnly).WithT(t)
			mallory.WaitConnected()

			// Mallory joins "bob's room". Bob is not in it and hears nothing
			// of it: no user-connected, no #rtcio:init-offer.
			mallory.Emit("join-room", map[string]any{"roomId": bob.ID(), "name": "mallory"})
			mallory.Emit("media-state", map[string]any{"roomId": bob.ID(), "mic": true, "cam": true})
			bob.ExpectNothing(200 * time.Millisecond)

			// What is addressed to bob reaches bob alone: a relay, and the
			// backfill of bob's own join of a second room.
			alice.Emit("#rtcio:message", map[string]any{"target": bob.ID(), "data": "secret-sdp"})
			bob.Expect(t, "#rtcio:message", map[string]any{"source": alice.ID(), "target": bob.ID(), "data": "secret-sdp"})
			alice.Emit("media-state", map[string]any{"roomId": "r", "mic": false, "cam": true})
			bob.Expect(t, "media-state", map[string]any{"roomId": "r", "mic": false, "cam": true})
			carol := js.Connect("carol", url, wsOnly).WithT(t)
			carol.WaitConnected()
			carol.Emit("join-room", map[string]any{"roomId": "r2", "name": "carol"})
			awaitJoin(t, js, url, wsOnly, carol, "r2")
			bob.Emit("join-room", map[string]any{"roomId": "r2", "name": "bob"})
			bob.Expect(t, "user-connected", map[string]any{"id": carol.ID(), "name": "carol"})
			mallory.ExpectNothing(200 * time.Millisecond)

			// The room mallory joined is a real room of its own: a second
			// member of it hears of mallory, as in any room.
			eve := js.Connect("eve", url, wsOnly).WithT(t)
			eve.WaitConnected()
			eve.Emit("join-room", map[string]any{"roomId": bob.ID(), "name": "eve"})
			eve.Expect(t, "user-connected", map[string]any{"id": mallory.ID(), "name": "mallory"})
			mallory.Expect(t, "user-connected", map[string]any{"id": eve.ID(), "name": "eve"})
			bob.ExpectNothing(100 * time.Millisecond)
		})
	}
}

// TestRoomNamedLikeSuspendedSocket: with recovery on, what is sent to a
// suspended socket is kept for its replay by its socket.io room; a stranger
// who joined a room of that name receives none of it, and the victim gets
// all of it when it recovers.
func TestRoomNamedLikeSuspendedSocket(t *testing.T) {
	f := newRecoveryRoom(t, recoveryRules(t, "2m"), wsOnly)
	mallory := f.js.Connect("mallory", f.url, wsOnly).WithT(t)
	mallory.WaitConnected()
	mallory.Emit("join-room", map[string]any{"roomId": f.a, "name": "mallory"})
	mallory.ExpectNothing(100 * time.Millisecond)
	f.dropAlice(t, 3, 1)

	f.bob.Emit("#rtcio:message", map[string]any{"target": f.a, "data": "secret-sdp"})
	mallory.ExpectNothing(300 * time.Millisecond)

	f.cut.restore()
	if got := f.alice.WaitConnected(); got != f.a || !f.alice.Recovered() {
		t.Fatalf("alice came back as %q (recovered %v), want %q recovered", got, f.alice.Recovered(), f.a)
	}
	f.alice.Expect(t, "#rtcio:message", map[string]any{"source": f.b, "target": f.a, "data": "secret-sdp"})
	mallory.ExpectNothing(100 * time.Millisecond)
}

// TestJoinBounds: one socket may be in server.max_rooms_per_socket rooms
// (100 by default) and join names of at most server.max_room_name bytes
// (256). A join past either is dropped like a failed validation: the room
// never sees the socket. Joining a room it is already in still works.
func TestJoinBounds(t *testing.T) {
	_, url := startRouter(t, builtinRules(t))
	js := jsclient.Start(t)
	hog := js.Connect("hog", url, wsOnly).WithT(t)
	hog.WaitConnected()
	for i := 0; i < 105; i++ {
		hog.Emit("join-room", map[string]any{"roomId": fmt.Sprintf("mr-%d", i), "name": "hog"})
	}
	hog.Emit("join-room", map[string]any{"roomId": "mr-0", "name": "hog"}) // already in: not refused

	probe := js.Connect("probe", url, wsOnly).WithT(t)
	probe.WaitConnected()
	probe.Emit("join-room", map[string]any{"roomId": "mr-99", "name": "probe"})
	probe.Expect(t, "user-connected", map[string]any{"id": hog.ID(), "name": "hog"})
	probe.Emit("join-room", map[string]any{"roomId": "mr-100", "name": "probe"})
	probe.Emit("join-room", map[string]any{"roomId": "mr-104", "name": "probe"})
	probe.ExpectNothing(200 * time.Millisecond)

	long := strings.Repeat("x", 257)
	probe.Emit("join-room", map[string]any{"roomId": long, "name": "probe"})
	probe.Emit("join-room", map[string]any{"roomId": long[:256], "name": "probe"})
	other := js.Connect("other", url, wsOnly).WithT(t)
	other.WaitConnected()
	other.Emit("join-room", map[string]any{"roomId": long, "name": "other"})
	other.Emit("join-room", map[string]any{"roomId": long[:256], "name": "other"})
	other.Expect(t, "user-connected", map[string]any{"id": probe.ID(), "name": "probe"})
	other.ExpectNothing(200 * time.Millisecond)
}

// TestJoinRefusalAnswered: a join's reject answers the sender when the
// join is refused, with the names bound before it, and the rule stops
// there; the limits follow a reload.
func TestJoinRefusalAnswered(t *testing.T) {
	src := func(max int) []byte {
		return []byte(fmt.Sprintf(`
server:
  max_rooms_per_socket: %d
  max_room_name: 8
rules:
  - event: join
    do:
      - let: { room: data }
      - join: room
        reject:
          emit: join-error
          payload: { room: room, rooms: len(socket.rooms) }
          ack: { ok: false }
      - ack: { ok: true, room: room }
`, max))
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "rtcio.yaml")
	if err := os.WriteFile(file, src(2), 0o644); err != nil {
		t.Fatal(err)
	}
	rt, err := router.New(router.Options{RulesFile: file, Logger: testLogger(), Environ: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, rt)
	js := jsclient.Start(t)
	c := js.Connect("c", url, wsOnly).WithT(t)
	c.WaitConnected()
	for _, step := range []struct {
		room string
		ack  map[string]any
	}{
		{"a", map[string]any{"ok": true, "room": "a"}},
		{"b", map[string]any{"ok": true, "room": "b"}},
		{"a", map[string]any{"ok": true, "room": "a"}}, // already in
		{"c", map[string]any{"ok": false}},
		{"toolongname", map[string]any{"ok": false}},
	} {
		if got := c.EmitWithAck("join", step.room); !jsclient.Equal(got, []any{step.ack}) {
			t.Fatalf("join %q: ack %v, want %v", step.room, got, step.ack)
		}
	}
	c.Expect(t, "join-error", map[string]any{"room": "c", "rooms": 2})
	c.Expect(t, "join-error", map[string]any{"room": "toolongname", "rooms": 2})

	if err := os.WriteFile(file, src(3), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rt.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := c.EmitWithAck("join", "c"); !jsclient.Equal(got, []any{map[string]any{"ok": true, "room": "c"}}) {
		t.Fatalf("join after reload: ack %v", got)
	}
}

// TestDisconnectCostIsLinear: a socket in many rooms is cleaned up in one
// pass. Measured as bytes allocated (exact, unlike time): leaving 4,000
// rooms one by one copied the room list once per room, 4000²×16/2 bytes
// (about 128 MB); one pass allocates a few MB.
func TestDisconnectCostIsLinear(t *testing.T) {
	src := strings.Replace(string(builtinRules(t)), "server:\n", "server:\n  max_rooms_per_socket: 10000\n", 1)
	l, err := router.NewLocal(router.Options{RulesFile: "test.yaml", Source: []byte(src), Environ: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Connect("hog", nil, nil); err != nil {
		t.Fatal(err)
	}
	const n = 4000
	for i := 0; i < n; i++ {
		if _, _, err := l.Send("hog", "join-room", []any{map[string]any{"roomId": fmt.Sprintf("mr-%d", i), "name": "hog"}}, false); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(l.Members("mr-3999")); got != 1 {
		t.Fatalf("mr-3999 has %d members, want 1", got)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := l.Disconnect("hog", "transport close"); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
		t.Fatalf("disconnecting a socket in %d rooms allocated %d MB; want linear cost (a few MB)", n, alloc>>20)
	}
	if got := len(l.Members("mr-0")); got != 0 {
		t.Fatalf("mr-0 still has %d members", got)
	}
}
