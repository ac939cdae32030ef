package router_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/jsclient"
	"github.com/rtcio/rtcio-router/internal/redistest"
	"github.com/rtcio/rtcio-router/router"
)

// startCluster runs n nodes of the rules src on one private Redis and
// returns their base URLs.
func startCluster(t *testing.T, n int, src []byte) (*redistest.Server, []*router.Router, []string) {
	t.Helper()
	redis := redistest.Start(t)
	var nodes []*router.Router
	var urls []string
	for range n {
		rt, err := router.New(router.Options{RulesFile: "test.yaml", Source: src, Logger: testLogger(), Environ: map[string]string{}, Redis: redis.URL()})
		if err != nil {
			t.Fatalf("node: %v", err)
		}
		nodes = append(nodes, rt)
		urls = append(urls, serve(t, rt))
	}
	return redis, nodes, urls
}

// connectAll connects one client per name, the i-th to urls[i%len(urls)],
// and waits until each is connected.
func connectAll(t *testing.T, p *jsclient.Process, urls []string, names ...string) []*jsclient.Client {
	t.Helper()
	out := make([]*jsclient.Client, len(names))
	for i, name := range names {
		out[i] = p.Connect(name, urls[i%len(urls)], wsOnly).WithT(t)
	}
	for _, c := range out {
		c.WaitConnected()
	}
	return out
}

// TestClusterSeedBehaviour: every behaviour of the reference server, event
// for event and in the same order, with the clients spread over two nodes
// (alice, dave and erin on one, bob and carol on the other): join backfill
// with cached media state, init-offer, media-state, stopScreenShare,
// dropped invalid events, peer-left and presence on disconnect.
func TestClusterSeedBehaviour(t *testing.T) {
	_, _, urls := startCluster(t, 2, builtinRules(t))
	for _, url := range urls {
		if body := health(t, url); body["status"] != "ok" || body["redis"] != "up" {
			t.Fatalf("health of %s: %v", url, body)
		}
	}
	js := clientKinds[0]
	t.Run("websocket", func(t *testing.T) {
		seedScenario(t, urls, func(p *jsclient.Process, url, name string) peer {
			return js.connect(t, p, url, name, "websocket", wsOnly)
		})
	})
	// Polling and upgrading clients need sticky sessions: through a load
	// balancer that keeps each session on the node that opened it.
	lb := startStickyProxy(t, urls)
	for _, mode := range transportModes {
		if mode.name == "websocket" {
			continue
		}
		t.Run(mode.name+" behind a sticky balancer", func(t *testing.T) {
			seedScenario(t, []string{lb}, func(p *jsclient.Process, url, name string) peer {
				return js.connect(t, p, url, name, mode.name, mode.opts)
			})
		})
	}
}

// TestClusterRelay: #rtcio:message between sockets of two nodes, both
// ways, with source stamped; refused to a socket that shares no room with
// the sender, wherever it is.
func TestClusterRelay(t *testing.T) {
	_, _, urls := startCluster(t, 2, builtinRules(t))
	p := jsclient.Start(t)
	clients := connectAll(t, p, []string{urls[0], urls[1], urls[1]}, "a", "b", "x")
	a, b, x := clients[0], clients[1], clients[2]
	a.Emit("join-room", map[string]any{"roomId": "r", "name": "a"})
	awaitJoin(t, p, urls[1], wsOnly, a, "r") // its witness on the other node
	b.Emit("join-room", map[string]any{"roomId": "r", "name": "b"})
	b.Expect(t, "user-connected", map[string]any{"id": a.ID(), "name": "a"})
	a.Expect(t, "user-connected", map[string]any{"id": b.ID(), "name": "b"})
	a.Expect(t, "#rtcio:init-offer", map[string]any{"source": b.ID()})

	a.Emit("#rtcio:message", map[string]any{"target": b.ID(), "source": "forged", "data": map[string]any{"sdp": "v=0"}})
	b.Expect(t, "#rtcio:message", map[string]any{"source": a.ID(), "target": b.ID(), "data": map[string]any{"sdp": "v=0"}})
	b.Emit("#rtcio:message", map[string]any{"target": a.ID(), "data": map[string]any{"candidate": "c1"}})
	a.Expect(t, "#rtcio:message", map[string]any{"source": b.ID(), "target": a.ID(), "data": map[string]any{"candidate": "c1"}})

	// x shares no room with a: nothing reaches it, from either node.
	a.Emit("#rtcio:message", map[string]any{"target": x.ID(), "data": 1})
	b.Emit("#rtcio:message", map[string]any{"target": x.ID(), "data": 2})
	x.ExpectNothing(300 * time.Millisecond)
}

// TestClusterJoinStorm: sockets on two nodes join one room at the same
// moment; each pair hears of each other exactly once (a user-connected
// either way: the later joiner is backfilled with the earlier, the earlier
// hears of the later) and exactly one #rtcio:init-offer goes out per pair.
func TestClusterJoinStorm(t *testing.T) {
	_, _, urls := startCluster(t, 2, builtinRules(t))
	p := jsclient.Start(t)
	const n = 8
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("c%d", i)
	}
	clients := connectAll(t, p, urls, names...)
	for _, c := range clients {
		c.Emit("join-room", map[string]any{"roomId": "storm", "name": c.ID()})
	}
	// Collect until each client has been quiet for a while.
	heard := map[string]map[string]int{}
	offers := map[[2]string]int{}
	for _, c := range clients {
		heard[c.ID()] = map[string]int{}
		for {
			ev, ok := c.TryNext(time.Second)
			if !ok {
				break
			}
			m, _ := ev.Args[0].(map[string]any)
			switch ev.Name {
			case "user-connected":
				id, _ := m["id"].(string)
				heard[c.ID()][id]++
			case "#rtcio:init-offer":
				src, _ := m["source"].(string)
				offers[[2]string{min(c.ID(), src), max(c.ID(), src)}]++
			}
		}
	}
	for _, c := range clients {
		for _, o := range clients {
			if o == c {
				continue
			}
			if got := heard[c.ID()][o.ID()]; got != 1 {
				t.Errorf("%s heard of %s %d times, want once", c.ID(), o.ID(), got)
			}
		}
	}
	if len(offers) != n*(n-1)/2 {
		t.Errorf("%d pairs got an init-offer, want %d", len(offers), n*(n-1)/2)
	}
	for pair, k := range offers {
		if k != 1 {
			t.Errorf("pair %v: %d init-offers, want 1", pair, k)
		}
	}
}

// TestClusterNodeDeath: a node that dies without a word (here: its
// heartbeat and bus stop, its sockets are not cleaned up) is found dead
// by the other, which runs the disconnect cleanup of each of its sockets:
// the peers hear #rtcio:peer-left and user-disconnected, and a late
// joiner finds no trace of the dead socket.
func TestClusterNodeDeath(t *testing.T) {
	_, nodes, urls := startCluster(t, 2, builtinRules(t))
	p := jsclient.Start(t)
	clients := connectAll(t, p, urls, "a", "b")
	a, b := clients[0], clients[1]
	a.Emit("join-room", map[string]any{"roomId": "r", "name": "a"})
	awaitJoin(t, p, urls[1], wsOnly, a, "r")
	b.Emit("join-room", map[string]any{"roomId": "r", "name": "b"})
	a.Expect(t, "user-connected", map[string]any{"id": b.ID(), "name": "b"})
	a.Expect(t, "#rtcio:init-offer", map[string]any{"source": b.ID()})
	bID := b.ID()

	router.KillForTest(nodes[1])
	start := time.Now()
	ev, ok := a.TryNext(30 * time.Second)
	if want := map[string]any{"id": bID}; !ok || ev.Name != "#rtcio:peer-left" || !jsclient.Equal(ev.Args, []any{want}) {
		t.Fatalf("want #rtcio:peer-left %v within 30s, got %v (%v)", want, ev, ok)
	}
	a.Expect(t, "user-disconnected", map[string]any{"id": bID})
	t.Logf("peers heard of the dead node's socket after %v", time.Since(start).Round(100*time.Millisecond))

	c := connectAll(t, p, urls[:1], "c")[0]
	c.Emit("join-room", map[string]any{"roomId": "r", "name": "c"})
	c.Expect(t, "user-connected", map[string]any{"id": a.ID(), "name": "a"})
	c.ExpectNothing(300 * time.Millisecond)
}
