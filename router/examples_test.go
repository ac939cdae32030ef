package router_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/jsclient"
)

// topology is where an example runs: one server, or a cluster of two
// nodes on Redis behind a sticky load balancer, which spreads the test's
// clients over the nodes in turn. Every example must behave the same on
// both, event for event.
type topology struct {
	name  string
	serve func(t *testing.T, src []byte) string
}

var topologies = []topology{
	{"one node", func(t *testing.T, src []byte) string { _, url := startRouter(t, src); return url }},
	{"two nodes", func(t *testing.T, src []byte) string {
		_, _, urls := startCluster(t, 2, src)
		return startStickyProxy(t, urls)
	}},
}

// eachTopology runs test on every topology.
func eachTopology(t *testing.T, test func(t *testing.T, topo topology)) {
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) { test(t, topo) })
	}
}

// startExample runs examples/NAME/rtcio.yaml on topo.
func startExample(t *testing.T, topo topology, name string) (string, *jsclient.Process) {
	t.Helper()
	src, err := os.ReadFile("../examples/" + name + "/rtcio.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return topo.serve(t, src), jsclient.Start(t)
}

var wsOnly = map[string]any{"transports": []string{"websocket"}}

// TestExampleRoster runs examples/roster as its README describes.
func TestExampleRoster(t *testing.T) {
	eachTopology(t, func(t *testing.T, topo topology) {
		url, js := startExample(t, topo, "roster")
		alice := js.Connect("alice", url, map[string]any{"transports": []string{"websocket"}})
		bob := js.Connect("bob", url, map[string]any{"transports": []string{"websocket"}})
		alice.WaitConnected()
		bob.WaitConnected()
		alice.Emit("join-room", map[string]any{"roomId": "demo", "name": "alice"})
		alice.ExpectNothing(100e6)
		bob.Emit("join-room", map[string]any{"roomId": "demo", "name": "bob"})
		bob.Expect(t, "user-connected", map[string]any{"id": alice.ID(), "name": "alice"})

		got := bob.EmitWithAck("get-roster", map[string]any{"roomId": "demo"})
		want := []any{map[string]any{"roomId": "demo", "peers": []any{
			map[string]any{"id": alice.ID(), "name": "alice"},
			map[string]any{"id": bob.ID(), "name": "bob"},
		}}}
		if !jsclient.Equal(got, want) {
			t.Fatalf("roster: %v, want %v", got, want)
		}
		if got := bob.EmitWithAck("get-roster", map[string]any{"roomId": "elsewhere"}); !jsclient.Equal(got, []any{map[string]any{"error": "not in this room"}}) {
			t.Fatalf("roster of a foreign room: %v", got)
		}

		alice.Expect(t, "user-connected", map[string]any{"id": bob.ID(), "name": "bob"})
		alice.Expect(t, "#rtcio:init-offer", map[string]any{"source": bob.ID()})
		bob.Emit("rename", map[string]any{"name": "  Bobby  "})
		alice.Expect(t, "renamed", map[string]any{"id": bob.ID(), "name": "Bobby"})
		bob.Emit("rename", map[string]any{"name": "   "})
		bob.Expect(t, "rename-error", map[string]any{"code": "bad-name", "message": "name must be 1 to 64 characters"})
		alice.ExpectNothing(100e6)
	})
}

// TestExampleChat runs examples/chat with the official client, as its
// README shows.
func TestExampleChat(t *testing.T) {
	eachTopology(t, func(t *testing.T, topo topology) {
		url, js := startExample(t, topo, "chat")
		a, b := joinPair(t, js, url, wsOnly, "r1")
		eve := js.Connect("eve", url, wsOnly)
		eve.WaitConnected()

		got := b.EmitWithAck("chat-message", map[string]any{"roomId": "r1", "text": "hello", "from": "forged"})
		ack := got[0].(map[string]any)
		if ack["ok"] != true || ack["at"] == nil {
			t.Fatalf("ack: %v", got)
		}
		want := map[string]any{"roomId": "r1", "text": "hello", "from": map[string]any{"id": b.ID(), "name": "b"}, "at": ack["at"]}
		a.Expect(t, "chat-message", want)
		b.Expect(t, "chat-message", want)

		long := strings.Repeat("x", 1001)
		if got := a.EmitWithAck("chat-message", map[string]any{"roomId": "r1", "text": long}); !jsclient.Equal(got, []any{map[string]any{"ok": false, "code": "bad-text"}}) {
			t.Fatalf("1001 characters accepted: %v", got)
		}
		a.Expect(t, "chat-error", map[string]any{"code": "bad-text", "message": "text must be 1 to 1000 characters"})
		if got := a.EmitWithAck("chat-message", map[string]any{"roomId": "r1", "text": long[:1000]}); got[0].(map[string]any)["ok"] != true {
			t.Fatalf("1000 characters refused: %v", got)
		}
		eve.Emit("chat-message", map[string]any{"roomId": "r1", "text": "let me in"})
		eve.Expect(t, "chat-error", map[string]any{"code": "not-in-room", "message": "join the room before chatting"})
		b.WaitFor("chat-message", time.Second)
		b.ExpectNothing(100 * time.Millisecond)
	})
}

// TestExamplePasswordRooms runs examples/password-rooms with the official
// client.
func TestExamplePasswordRooms(t *testing.T) {
	eachTopology(t, func(t *testing.T, topo topology) {
		url, js := startExample(t, topo, "password-rooms")
		alice := js.Connect("alice", url, wsOnly)
		bob := js.Connect("bob", url, wsOnly)
		alice.WaitConnected()
		bob.WaitConnected()
		if got := bob.EmitWithAck("room-info", map[string]any{"roomId": "s"}); !jsclient.Equal(got, []any{map[string]any{"roomId": "s", "peers": 0, "passwordRequired": false}}) {
			t.Fatalf("room-info: %v", got)
		}
		alice.Emit("join-room", map[string]any{"roomId": "s", "name": "alice", "password": "pw"})
		alice.ExpectNothing(100 * time.Millisecond)
		bob.Emit("join-room", map[string]any{"roomId": "s", "name": "bob"})
		bob.Expect(t, "join-error", map[string]any{"roomId": "s", "code": "password-required", "message": "this room needs a password"})
		bob.Emit("join-room", map[string]any{"roomId": "s", "name": "bob", "password": "nope"})
		bob.Expect(t, "join-error", map[string]any{"roomId": "s", "code": "wrong-password", "message": "wrong password"})
		alice.ExpectNothing(100 * time.Millisecond)
		bob.Emit("join-room", map[string]any{"roomId": "s", "name": "bob", "password": "pw"})
		bob.Expect(t, "user-connected", map[string]any{"id": alice.ID(), "name": "alice"})
		alice.Expect(t, "user-connected", map[string]any{"id": bob.ID(), "name": "bob"})
	})
}

// TestExampleRaiseHandAndLeave runs examples/raise-hand and
// examples/leave-room with the official client.
func TestExampleRaiseHandAndLeave(t *testing.T) {
	eachTopology(t, func(t *testing.T, topo topology) {
		url, js := startExample(t, topo, "raise-hand")
		a, b := joinPair(t, js, url, wsOnly, "r1")
		if got := a.EmitWithAck("raise-hand", map[string]any{"roomId": "r1", "up": true}); !jsclient.Equal(got, []any{map[string]any{"ok": true}}) {
			t.Fatalf("raise-hand: %v", got)
		}
		a.Expect(t, "hand", map[string]any{"roomId": "r1", "id": a.ID(), "up": true})
		b.Expect(t, "hand", map[string]any{"roomId": "r1", "id": a.ID(), "up": true})
		late := js.Connect("late", url, wsOnly)
		late.WaitConnected()
		late.Emit("join-room", map[string]any{"roomId": "r1", "name": "late"})
		late.Expect(t, "user-connected", map[string]any{"id": a.ID(), "name": "a"})
		late.Expect(t, "user-connected", map[string]any{"id": b.ID(), "name": "b"})
		late.Expect(t, "hands", map[string]any{"roomId": "r1", "ids": []any{a.ID()}})
		a.Close()
		b.WaitFor("hand", 2*time.Second)

		url, js = startExample(t, topo, "leave-room")
		a, b = joinPair(t, js, url, wsOnly, "r2")
		if got := b.EmitWithAck("leave-room", map[string]any{"roomId": "r2"}); !jsclient.Equal(got, []any{map[string]any{"ok": true}}) {
			t.Fatalf("leave-room: %v", got)
		}
		a.Expect(t, "#rtcio:peer-left", map[string]any{"id": b.ID()})
		a.Expect(t, "user-disconnected", map[string]any{"id": b.ID()})
		a.Emit("#rtcio:message", map[string]any{"target": b.ID(), "data": 1})
		b.ExpectNothing(150 * time.Millisecond)
	})
}

// TestExampleTURNCredentials checks the vended credential against an
// independent HMAC-SHA1 computation and its expiry against the clock (on
// one node: it reads no shared state).
func TestExampleTURNCredentials(t *testing.T) {
	src, err := os.ReadFile("../examples/turn-credentials/rtcio.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, url := startRouterEnv(t, src, map[string]string{"TURN_SECRET": "s3cret", "TURN_URLS": "turn:127.0.0.1:3478"})
	js := jsclient.Start(t)
	c := js.Connect("c", url, wsOnly)
	c.WaitConnected()
	before := time.Now().Unix()
	got := c.EmitWithAck("turn-credentials")[0].(map[string]any)
	server := got["iceServers"].([]any)[0].(map[string]any)
	user := server["username"].(string)
	expiry, id, ok := strings.Cut(user, ":")
	if !ok || id != c.ID() {
		t.Fatalf("username %q: want EXPIRY:%s", user, c.ID())
	}
	exp, err := strconv.ParseInt(expiry, 10, 64)
	if err != nil || exp < before+3600 || exp > time.Now().Unix()+3600 {
		t.Fatalf("expiry %q not now+3600", expiry)
	}
	mac := hmac.New(sha1.New, []byte("s3cret"))
	mac.Write([]byte(user))
	if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); server["credential"] != want {
		t.Fatalf("credential %v, want %s", server["credential"], want)
	}
	if !jsclient.Equal(server["urls"], []any{"turn:127.0.0.1:3478"}) || got["ttl"] != float64(3600) {
		t.Fatalf("answer: %v", got)
	}
}

// TestExampleRoomCapacity: the fifth peer gets room-full, alone.
func TestExampleRoomCapacity(t *testing.T) {
	eachTopology(t, func(t *testing.T, topo topology) {
		url, js := startExample(t, topo, "room-capacity")
		var peers []*jsclient.Client
		for i := 0; i < 5; i++ {
			c := js.Connect(fmt.Sprintf("p%d", i), url, wsOnly)
			c.WaitConnected()
			peers = append(peers, c)
		}
		// Each join lands before the next: the first is seen by a witness, each
		// later one by its own backfill of everyone before it.
		for i, c := range peers[:4] {
			c.Emit("join-room", map[string]any{"roomId": "r", "name": c.Name()})
			if i == 0 {
				awaitJoin(t, js, url, wsOnly, c, "r")
				continue
			}
			for range i {
				c.WaitFor("user-connected", 5*time.Second)
			}
		}
		peers[4].Emit("join-room", map[string]any{"roomId": "r", "name": "p4"})
		peers[4].Expect(t, "room-full", map[string]any{"roomId": "r", "max": 4})
		for _, c := range peers[:4] {
			for _, ev := range c.Received() {
				if ev.Name == "user-connected" && ev.Args[0].(map[string]any)["id"] == peers[4].ID() {
					t.Fatalf("%s heard of the refused peer", c.Name())
				}
			}
		}
	})
}

// TestExampleRateLimits runs examples/rate-limits with the official client,
// reading every event each peer receives, in order: a chat burst passes and
// the next line is refused through the event and the ack, a burst of ICE
// candidates passes the relay, and a socket that floods media-state is
// throttled to its burst, then disconnected while its peers see it leave.
// (The exact counts, on a fixed clock, are in the example's config tests.)
func TestExampleRateLimits(t *testing.T) {
	eachTopology(t, func(t *testing.T, topo topology) {
		url, js := startExample(t, topo, "rate-limits")
		a, b := joinPair(t, js, url, wsOnly, "r1")

		var lines []map[string]any
		for i := 0; i < 5; i++ {
			got := a.EmitWithAck("chat-message", map[string]any{"roomId": "r1", "text": fmt.Sprint(i)})
			ack, _ := got[0].(map[string]any)
			if ack["ok"] != true || ack["at"] == nil {
				t.Fatalf("line %d of the burst refused: %v", i, got)
			}
			lines = append(lines, map[string]any{"roomId": "r1", "text": fmt.Sprint(i), "from": map[string]any{"id": a.ID(), "name": "a"}, "at": ack["at"]})
		}
		if got := a.EmitWithAck("chat-message", map[string]any{"roomId": "r1", "text": "one too many"}); !jsclient.Equal(got, []any{map[string]any{"ok": false, "code": "rate-limited"}}) {
			t.Fatalf("6th line: ack %v, want rate-limited", got)
		}
		for _, line := range lines {
			a.Expect(t, "chat-message", line)
			b.Expect(t, "chat-message", line)
		}
		a.Expect(t, "chat-error", map[string]any{"code": "rate-limited", "message": "slow down"})

		// A trickle-ICE burst: 150 candidates at once arrive, in order.
		for i := 0; i < 150; i++ {
			b.Emit("#rtcio:message", map[string]any{"target": a.ID(), "data": map[string]any{"candidate": i}})
		}
		for i := 0; i < 150; i++ {
			a.Expect(t, "#rtcio:message", map[string]any{"source": b.ID(), "target": a.ID(), "data": map[string]any{"candidate": i}})
		}

		mallory := js.Connect("mallory", url, wsOnly).WithT(t)
		m := mallory.WaitConnected() // its id, kept: ID() is "" once disconnected
		mallory.Emit("join-room", map[string]any{"roomId": "r1", "name": "mallory"})
		mallory.Expect(t, "user-connected", map[string]any{"id": a.ID(), "name": "a"})
		mallory.Expect(t, "user-connected", map[string]any{"id": b.ID(), "name": "b"})
		for _, c := range []*jsclient.Client{a, b} {
			c.Expect(t, "user-connected", map[string]any{"id": m, "name": "mallory"})
			c.Expect(t, "#rtcio:init-offer", map[string]any{"source": m})
		}
		const sent = 300
		for i := 0; i < sent; i++ {
			mallory.Emit("media-state", map[string]any{"roomId": "r1", "mic": i%2 == 0, "cam": true, "n": i})
		}
		if reason := mallory.WaitDisconnect(); reason != "io server disconnect" {
			t.Fatalf("flooder disconnected with %q, want io server disconnect", reason)
		}
		// Each peer gets the burst of 20, in order, then perhaps a few more
		// that the bucket (10/s, real time here) refilled for while the flood
		// was read, then mallory leaving; nothing else.
		for _, c := range []*jsclient.Client{a, b} {
			passed, last := 0, -1
			for {
				ev := c.Next(5 * time.Second)
				if ev.Name != "media-state" {
					if passed < 20 || passed > 40 {
						t.Fatalf("%s: %d media-state passed before %s, want the burst of 20 and a few refills", c.Name(), passed, ev)
					}
					if ev.Name != "#rtcio:peer-left" || !jsclient.Equal(ev.Args, []any{map[string]any{"id": m}}) {
						t.Fatalf("%s: got %s, want #rtcio:peer-left for mallory", c.Name(), ev)
					}
					break
				}
				n, _ := ev.Args[0].(map[string]any)["n"].(float64)
				if passed < 20 && int(n) != passed || int(n) <= last {
					t.Fatalf("%s: media-state %d is %s", c.Name(), passed, ev)
				}
				if want := map[string]any{"roomId": "r1", "mic": int(n)%2 == 0, "cam": true, "n": n}; !jsclient.Equal(ev.Args, []any{want}) {
					t.Fatalf("%s: got %s, want %v", c.Name(), ev, want)
				}
				passed, last = passed+1, int(n)
			}
			c.Expect(t, "user-disconnected", map[string]any{"id": m})
		}
		a.ExpectNothing(100 * time.Millisecond)
		b.ExpectNothing(time.Millisecond) // ExpectNothing(0) waits the default 5 s
		if !a.Connected() || !b.Connected() {
			t.Fatal("a well-behaved peer was disconnected")
		}
	})
}

// TestExampleHardened runs examples/hardened with the official client: only
// members speak to a room, with their id stamped; a room name that is
// another socket's id is an ordinary room; a fifth room is refused with
// join-error; browsers from other origins are refused.
func TestExampleHardened(t *testing.T) {
	eachTopology(t, func(t *testing.T, topo topology) {
		url, js := startExample(t, topo, "hardened")
		a, b := joinPair(t, js, url, wsOnly, "standup")

		mallory := js.Connect("mallory", url, wsOnly).WithT(t)
		mallory.WaitConnected()
		mallory.Emit("media-state", map[string]any{"roomId": "standup", "mic": false, "cam": false})
		mallory.Emit("stopScreenShare", map[string]any{"roomId": "standup", "streamId": "s1"})
		mallory.Emit("join-room", map[string]any{"roomId": b.ID(), "name": "mallory"})
		a.Emit("#rtcio:message", map[string]any{"target": b.ID(), "data": "offer"})
		b.Expect(t, "#rtcio:message", map[string]any{"source": a.ID(), "target": b.ID(), "data": "offer"})
		a.Emit("media-state", map[string]any{"roomId": "standup", "mic": true, "cam": false, "id": mallory.ID()})
		b.Expect(t, "media-state", map[string]any{"id": a.ID(), "roomId": "standup", "mic": true, "cam": false})
		mallory.ExpectNothing(200 * time.Millisecond)
		a.ExpectNothing(50 * time.Millisecond)

		for _, room := range []string{"r2", "r3", "r4"} {
			a.Emit("join-room", map[string]any{"roomId": room, "name": "a"})
		}
		a.Emit("join-room", map[string]any{"roomId": "r5", "name": "a"})
		a.Expect(t, "join-error", map[string]any{"code": "too-many-rooms", "roomId": "r5"})
		a.Emit("join-room", map[string]any{"roomId": "not a slug", "name": "a"})
		a.Expect(t, "join-error", map[string]any{"code": "bad-room"})

		for origin, ok := range map[string]bool{"https://evil.example": false, "https://app.example.com": true} {
			c := js.Connect(origin, url, map[string]any{"transports": []string{"polling"}, "extraHeaders": map[string]any{"Origin": origin}})
			if ok {
				c.WaitConnected()
			} else {
				c.WaitConnectError()
			}
		}
	})
}
