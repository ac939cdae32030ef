package router

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/rules"
)

// TestRecoveryRaceTimerAndAttach races the end of a recovery window with
// the recovery itself, many times, on the router's state (no network, so
// the race is hit on every round rather than once in a long while). Every
// round must end wholly one way: recovered (registered, in its room, no
// peer-left) or cleaned up (forgotten, peer-left once, attach refused).
// Which way a racing round goes is up to the scheduler, so every third
// round runs the two in a fixed order instead, each order in turn: the
// attach first must recover and the timer first must clean up, so both
// outcomes are checked on every run whatever the races did.
func TestRecoveryRaceTimerAndAttach(t *testing.T) {
	src, err := os.ReadFile("../rtcio.yaml")
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLocal(Options{RulesFile: "rtcio.yaml", Source: src})
	if err != nil {
		t.Fatal(err)
	}
	r := l.r
	r.rec.window = time.Hour // the test ends windows itself
	join := func(id string) {
		t.Helper()
		if err := l.Connect(id, nil, nil); err != nil {
			t.Fatal(err)
		}
		if _, _, err := l.Send(id, "join-room", []any{map[string]any{"roomId": "r1", "name": id}}, false); err != nil {
			t.Fatal(err)
		}
	}
	join("b")
	join("a")
	l.Deliveries()

	var recovered, expired int
	for round := 0; round < 500; round++ {
		c := l.conn("a")
		r.disconnected(c, nil, "transport close") // Local conns have no socket
		r.st.mu.RLock()
		sp := c.suspended
		n := r.rec.suspended
		r.st.mu.RUnlock()
		if sp == nil || n != 1 {
			t.Fatalf("round %d: not suspended (suspended count %d)", round, n)
		}

		var got *conn
		want := "either"
		switch round % 6 {
		case 1: // the client is back before the window ends
			got, _ = r.attach("a", nil)
			r.expire(c, sp)
			want = "recovered"
		case 4: // the window ends before the client is back
			r.expire(c, sp)
			got, _ = r.attach("a", nil)
			want = "expired"
		default:
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); r.expire(c, sp) }()
			go func() { defer wg.Done(); got, _ = r.attach("a", nil) }()
			wg.Wait()
		}

		peerLeft := 0
		for _, d := range l.Deliveries() {
			if d.Event == rules.EventPeerLeft {
				peerLeft++
			}
		}
		r.st.mu.RLock()
		live, registered, members, suspended := c.live, r.st.socket("a") == c, host{r.st}.Members("r1"), r.rec.suspended
		r.st.mu.RUnlock()
		switch {
		case got == c && live && registered && len(members) == 2 && peerLeft == 0 && suspended == 0 && !c.closing.Load():
			if want == "expired" {
				t.Fatalf("round %d: recovered after its window was cleaned up", round)
			}
			recovered++
			// A late timer of this round finds nothing to do.
			r.expire(c, sp)
			if !l.Connected("a") {
				t.Fatalf("round %d: a stale timer cleaned up a recovered socket", round)
			}
		case got == nil && !live && !registered && len(members) == 1 && peerLeft == 1 && suspended == 0:
			if want == "recovered" {
				t.Fatalf("round %d: cleaned up although the client came back within its window", round)
			}
			expired++
			join("a")
			l.Deliveries()
		default:
			t.Fatalf("round %d: half recovered: attach %v, live %v, registered %v, members %v, peer-left %d, suspended %d",
				round, got != nil, live, registered, members, peerLeft, suspended)
		}
	}
	t.Logf("recovered %d, expired %d", recovered, expired)
	if recovered == 0 || expired == 0 {
		t.Fatalf("recovered %d, expired %d: want both outcomes", recovered, expired)
	}

	// Drain ends a suspension at once, and its timer then finds nothing.
	c := l.conn("a")
	r.disconnected(c, nil, "ping timeout")
	r.st.mu.RLock()
	sp := c.suspended
	r.st.mu.RUnlock()
	r.Drain()
	if l.Connected("a") || sp.timer.Stop() {
		t.Fatal("Drain left a suspended socket or its timer")
	}
	// Draining: a recoverable drop is cleaned up at once.
	c = l.conn("b")
	r.disconnected(c, nil, "transport close")
	if l.Connected("b") {
		t.Fatal("a drop while draining was suspended")
	}
}
