package router_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/jsclient"
)

// joinPair connects two JS clients on mode, puts them in room (a's join
// handled first) and drains the presence events, returning them ready for
// relay traffic.
func joinPair(t *testing.T, js *jsclient.Process, url string, opts map[string]any, room string) (*jsclient.Client, *jsclient.Client) {
	t.Helper()
	a := js.Connect("a-"+room, url, opts)
	b := js.Connect("b-"+room, url, opts)
	for _, c := range []*jsclient.Client{a, b} {
		c.WaitConnected()
		// While a client upgrades it holds its events back, so without this
		// b's join could overtake a's.
		if _, fixed := opts["transports"]; !fixed {
			c.WaitTransport("websocket")
		}
	}
	a.Emit("join-room", map[string]any{"roomId": room, "name": "a"})
	awaitJoin(t, js, url, opts, a, room)
	b.Emit("join-room", map[string]any{"roomId": room, "name": "b"})
	b.Expect(t, "user-connected", map[string]any{"id": a.ID(), "name": "a"})
	a.Expect(t, "user-connected", map[string]any{"id": b.ID(), "name": "b"})
	a.Expect(t, "#rtcio:init-offer", map[string]any{"source": b.ID()})
	return a, b
}

// awaitJoin returns once the server has handled the join of room that c
// has already sent (as the only member so far), so that a join sent next
// is handled after it. Such a join sends nothing that could prove it, so a
// witness does: it joins room too and hears of c whichever of the two
// joins the server handled first (the room's user-connected for c, or its
// own backfill with c). It then disconnects, and c reads everything up to
// hearing it leave (#rtcio:peer-left, then the user-disconnected of rules
// that announce a leaver, as the built-in ones and the examples do): the
// witness's cleanup has run, so the next join finds c alone in the room
// and c has no event of the witness left unread.
func awaitJoin(t *testing.T, js *jsclient.Process, url string, opts map[string]any, c *jsclient.Client, room string) {
	t.Helper()
	w := js.Connect(c.Name()+"-witness", url, opts).WithT(t)
	w.WaitConnected()
	if _, fixed := opts["transports"]; !fixed {
		w.WaitTransport("websocket")
	}
	wid, cid := w.ID(), c.ID()
	w.Emit("join-room", map[string]any{"roomId": room, "name": "witness"})
	if ev := w.Next(jsclient.DefaultTimeout); ev.Name != "user-connected" || firstArg(ev)["id"] != cid {
		t.Fatalf("the witness of %s's join got %s first", c.Name(), ev)
	}
	w.Close()
	for {
		ev := c.WithT(t).Next(jsclient.DefaultTimeout)
		switch id, _ := firstArg(ev)["id"].(string); {
		case ev.Name == "user-disconnected" && id == wid:
			return
		case ev.Name == "user-connected" && id == wid, ev.Name == "#rtcio:peer-left" && id == wid:
		case ev.Name == "#rtcio:init-offer" && firstArg(ev)["source"] == wid:
		default:
			t.Fatalf("%s got %s while the witness of its join came and went", c.Name(), ev)
		}
	}
}

// firstArg is an event's first argument as an object, or nil.
func firstArg(ev jsclient.Event) map[string]any {
	if len(ev.Args) == 0 {
		return nil
	}
	m, _ := ev.Args[0].(map[string]any)
	return m
}

// TestRelayOrderAndStamping sends 1,000 numbered envelopes of realistic
// sizes A→B on each transport: all arrive, in order, with source stamped.
func TestRelayOrderAndStamping(t *testing.T) {
	sdp := strings.Repeat("a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host\r\n", 60) // ~3.5 KB
	for _, mode := range transportModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			_, url := startRouter(t, builtinRules(t))
			js := jsclient.Start(t)
			a, b := joinPair(t, js, url, mode.opts, "relay")
			const n = 1000
			for i := 0; i < n; i++ {
				data := map[string]any{"candidate": map[string]any{"candidate": fmt.Sprintf("candidate:%d", i), "sdpMid": "0", "sdpMLineIndex": 0}}
				if i%100 == 0 {
					data = map[string]any{"description": map[string]any{"type": "offer", "sdp": sdp}, "n": i}
				}
				// A lying source must be replaced by the sender's real id.
				a.Emit("#rtcio:message", map[string]any{"source": "spoofed", "target": b.ID(), "data": data, "seq": i})
			}
			for i := 0; i < n; i++ {
				ev := b.Next(10 * time.Second)
				if ev.Name != "#rtcio:message" || len(ev.Args) != 1 {
					t.Fatalf("event %d: got %s", i, ev)
				}
				env := ev.Args[0].(map[string]any)
				if env["seq"] != float64(i) {
					t.Fatalf("event %d: out of order: seq %v", i, env["seq"])
				}
				if env["source"] != a.ID() || env["target"] != b.ID() {
					t.Fatalf("event %d: source %v target %v, want %s → %s", i, env["source"], env["target"], a.ID(), b.ID())
				}
			}
			b.ExpectNothing(100 * time.Millisecond)
		})
	}
}

// TestRelayRefusesStrangers: a socket cannot message a socket it shares no
// room with, nor use a room name as a target; peers hear nothing.
func TestRelayRefusesStrangers(t *testing.T) {
	_, url := startRouter(t, builtinRules(t))
	js := jsclient.Start(t)
	a, b := joinPair(t, js, url, nil, "r1")
	x, y := joinPair(t, js, url, nil, "r2")
	lonely := js.Connect("lonely", url, nil)
	lonely.WaitConnected()

	a.Emit("#rtcio:message", map[string]any{"target": x.ID(), "data": map[string]any{"n": 1}})
	a.Emit("#rtcio:message", map[string]any{"target": "r2", "data": map[string]any{"n": 2}})
	lonely.Emit("#rtcio:message", map[string]any{"target": a.ID(), "data": map[string]any{"n": 3}})
	a.Emit("#rtcio:message", map[string]any{"target": a.ID(), "data": map[string]any{"n": 4}})
	// Then a legitimate one, which must still arrive.
	a.Emit("#rtcio:message", map[string]any{"target": b.ID(), "data": map[string]any{"n": 5}})
	b.Expect(t, "#rtcio:message", map[string]any{"source": a.ID(), "target": b.ID(), "data": map[string]any{"n": 5}})
	for _, c := range []*jsclient.Client{a, x, y, lonely} {
		c.ExpectNothing(150 * time.Millisecond)
	}
}

// TestRelayOpenMode: with shared_room_only off the relay behaves like the
// reference server and forwards to any connected socket id.
func TestRelayOpenMode(t *testing.T) {
	src := strings.Replace(string(builtinRules(t)), "shared_room_only: true", "shared_room_only: false", 1)
	_, url := startRouter(t, []byte(src))
	js := jsclient.Start(t)
	a := js.Connect("a", url, nil)
	b := js.Connect("b", url, nil)
	a.WaitConnected()
	b.WaitConnected()
	a.Emit("#rtcio:message", map[string]any{"source": "x", "target": b.ID(), "data": "hi"})
	b.Expect(t, "#rtcio:message", map[string]any{"source": a.ID(), "target": b.ID(), "data": "hi"})
}

// TestBroadcastBurst: 2,000 media-state broadcasts in a burst all reach
// the other member, in order, on each transport.
func TestBroadcastBurst(t *testing.T) {
	for _, mode := range transportModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			_, url := startRouter(t, builtinRules(t))
			js := jsclient.Start(t)
			a, b := joinPair(t, js, url, mode.opts, "burst")
			const n = 2000
			for i := 0; i < n; i++ {
				a.Emit("media-state", map[string]any{"roomId": "burst", "mic": i%2 == 0, "cam": true, "n": i})
			}
			for i := 0; i < n; i++ {
				ev := b.Next(10 * time.Second)
				if ev.Name != "media-state" || ev.Args[0].(map[string]any)["n"] != float64(i) {
					t.Fatalf("broadcast %d: got %s", i, ev)
				}
			}
			a.ExpectNothing(100 * time.Millisecond)
		})
	}
}
