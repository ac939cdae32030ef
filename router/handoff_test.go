package router_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	goredis "github.com/redis/go-redis/v9"

	"github.com/rtcio/rtcio-router/internal/jsclient"
	"github.com/rtcio/rtcio-router/router/internal/sio/siotest"
)

// TestClusterKeptEventsInOffsetOrder: with recovery on in a cluster, a
// socket receives its events strictly in the order of their offsets, so
// that the offset socket.io-client remembers (the last one it got) is
// the newest it has, and a recovery replays exactly what it missed. Alice
// on node 0 is sent relays at once by carol, on her node, and by bob, on
// the other: each one arrives once, and every offset is newer than the one
// before it. (Delivering a same-node relay when its script returned raced
// with the deliveries other nodes published before it.)
func TestClusterKeptEventsInOffsetOrder(t *testing.T) {
	t.Parallel()
	f := newClusterRecoveryRoom(t, recoveryRules(t, "2m"), 2)
	alice, bob, a := f.alice, f.bob, f.a
	carol := f.js.Connect("carol", f.urls[0], wsOnly).WithT(t)
	carol.WaitConnected()
	carol.Emit("join-room", map[string]any{"roomId": "r1", "name": "carol"})
	for _, p := range []*jsclient.Client{alice, bob} {
		if ev := p.WaitFor("#rtcio:init-offer", jsclient.DefaultTimeout); ev.Name == "" {
			t.Fatalf("%s: carol's join not seen", p.Name())
		}
	}
	skip := len(alice.Received())

	const n = 150
	var wg sync.WaitGroup
	for _, s := range []*jsclient.Client{bob, carol} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if err := s.TryEmit("#rtcio:message", map[string]any{"target": a, "data": map[string]any{"from": s.Name(), "seq": i}}); err != nil {
					t.Errorf("%s: emit: %v", s.Name(), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	count := func() int {
		k := 0
		for _, ev := range alice.Received()[skip:] {
			if ev.Name == "#rtcio:message" {
				k++
			}
		}
		return k
	}
	deadline := time.Now().Add(15 * time.Second) // generous: nothing is timed
	for count() < 2*n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // for duplicates, had there been any, to arrive

	seen := map[string]int{}
	var prev string
	back := 0
	for _, ev := range alice.Received()[skip:] {
		if ev.Name != "#rtcio:message" {
			continue
		}
		m, _ := ev.Args[0].(map[string]any)
		d, _ := m["data"].(map[string]any)
		seen[fmt.Sprint(d["from"], "/", d["seq"])]++
		if prev != "" && !offsetBefore(prev, ev.Offset) {
			back++
			if back <= 5 {
				t.Errorf("offset %q after %q (%v from %v)", ev.Offset, prev, d["seq"], d["from"])
			}
		}
		prev = ev.Offset
	}
	if back > 0 {
		t.Errorf("%d of %d events arrived with an offset not newer than the one before", back, count())
	}
	for _, s := range []string{"bob", "carol"} {
		for i := range n {
			if k := seen[fmt.Sprint(s, "/", i)]; k != 1 {
				t.Errorf("relay %d of %s arrived %d times", i, s, k)
			}
		}
	}
}

// TestClusterCloseHandsOff: a node with sessions in Redis that closes
// (SIGTERM) sends each WebSocket client a close frame and goes on reading
// and handling what the client sends until the client's own close frame:
// events already on their way when the node stopped are relayed, not
// dropped with the connection. Dave, a raw client on node 0, gets the
// close frame, sends relays to bob on node 1 after it (as a client's
// emits in flight arrive), then answers the close: bob gets every relay,
// in order. Then node 0 leaves the cluster's set of nodes, so that no
// node takes it for dead.
func TestClusterCloseHandsOff(t *testing.T) {
	t.Parallel()
	rs, nodes, urls := startCluster(t, 2, recoveryRules(t, "2m"))
	js := jsclient.Start(t)
	bob := js.Connect("bob", urls[1], wsOnly).WithT(t)
	b := bob.WaitConnected()
	bob.Emit("join-room", map[string]any{"roomId": "r1", "name": "bob"})
	awaitJoin(t, js, urls[1], wsOnly, bob, "r1")

	dave := siotest.WSConnect(t, strings.TrimPrefix(urls[0], "http://"), "dave")
	writeEvent := func(event string, arg map[string]any) {
		t.Helper()
		frame, err := json.Marshal([]any{event, arg})
		if err == nil {
			err = dave.WriteMessage(websocket.TextMessage, append([]byte("42"), frame...))
		}
		if err != nil {
			t.Fatalf("dave: write %s: %v", event, err)
		}
	}
	writeEvent("join-room", map[string]any{"roomId": "r1", "name": "dave"})
	ev := bob.WaitFor("user-connected", jsclient.DefaultTimeout)
	d, _ := firstArg(ev)["id"].(string)
	if d == "" {
		t.Fatalf("bob: dave's join not seen")
	}

	// Dave does not answer the close frame when it arrives: he sends his
	// relays first, as a client does whose emits were on their way.
	dave.SetCloseHandler(func(int, string) error { return nil })
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		closed <- nodes[0].Close(ctx)
	}()
	_ = dave.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := dave.ReadMessage()
		if err == nil {
			continue // events, pings: sent before the close
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("dave: want a close frame from the stopping node, got %v", err)
		}
		if ce.Code != websocket.CloseGoingAway {
			t.Errorf("dave: close code %d, want %d (going away)", ce.Code, websocket.CloseGoingAway)
		}
		break
	}
	const k = 20
	for i := range k {
		writeEvent("#rtcio:message", map[string]any{"target": b, "data": i})
	}
	if err := dave.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), time.Now().Add(time.Second)); err != nil {
		t.Fatalf("dave: close: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("close: %v", err)
	}
	for i := range k {
		ev := bob.WaitFor("#rtcio:message", jsclient.DefaultTimeout)
		if want := map[string]any{"source": d, "target": b, "data": float64(i)}; !jsclient.Equal(ev.Args, []any{want}) {
			t.Fatalf("bob: relay %d: got %s", i, ev)
		}
	}
	bob.ExpectNothing(300 * time.Millisecond) // dave suspended, not gone: no peer-left

	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr})
	defer rdb.Close()
	if n, err := rdb.SCard(context.Background(), "{rtcio}:nodes").Result(); err != nil || n != 1 {
		t.Errorf("nodes registered after node 0 closed: %d (%v), want 1", n, err)
	}
}
