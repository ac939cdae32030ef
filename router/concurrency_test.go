package router_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/jsclient"
)

// TestConcurrentJoinsAreAtomic has many sockets join one room at the same
// moment. Whatever the interleaving, every socket must learn of every
// other exactly once (backfill or broadcast, never both, never neither),
// and each pair must get exactly one #rtcio:init-offer, sent to the member
// that was there first.
func TestConcurrentJoinsAreAtomic(t *testing.T) {
	const n = 60
	_, url := startRouter(t, builtinRules(t))
	js := jsclient.Start(t)
	clients := make([]*jsclient.Client, n)
	for i := range clients {
		clients[i] = js.Connect(fmt.Sprintf("c%02d", i), url, map[string]any{"transports": []string{"websocket"}})
	}
	ids := map[string]int{}
	for i, c := range clients {
		ids[c.WaitConnected()] = i
	}
	for i, c := range clients {
		c.Emit("join-room", map[string]any{"roomId": "crowd", "name": fmt.Sprint(i)})
	}
	offers := map[[2]int]int{} // [offerer, newcomer] → count
	for i, c := range clients {
		heard := map[string]int{}
		for len(heard) < n-1 {
			ev, ok := c.TryNext(10 * time.Second)
			if !ok {
				t.Fatalf("client %d heard of %d peers, want %d", i, len(heard), n-1)
			}
			switch ev.Name {
			case "user-connected":
				id := ev.Args[0].(map[string]any)["id"].(string)
				heard[id]++
				if heard[id] > 1 {
					t.Fatalf("client %d heard of %s twice", i, id)
				}
				if id == c.ID() {
					t.Fatalf("client %d heard of itself", i)
				}
			case "#rtcio:init-offer":
				src := ev.Args[0].(map[string]any)["source"].(string)
				offers[[2]int{i, ids[src]}]++
			default:
				t.Fatalf("client %d: unexpected %s", i, ev)
			}
		}
	}
	// Collect the offers still in flight after each client's last presence.
	deadline := time.Now().Add(2 * time.Second)
	for total(offers) < n*(n-1)/2 && time.Now().Before(deadline) {
		for i, c := range clients {
			if ev, ok := c.TryNext(10 * time.Millisecond); ok && ev.Name == "#rtcio:init-offer" {
				offers[[2]int{i, ids[ev.Args[0].(map[string]any)["source"].(string)]}]++
			}
		}
	}
	for a := 0; a < n; a++ {
		for b := a + 1; b < n; b++ {
			if got := offers[[2]int{a, b}] + offers[[2]int{b, a}]; got != 1 {
				t.Fatalf("pair %d,%d got %d init-offers, want exactly 1", a, b, got)
			}
		}
	}
	// Everyone leaves at once; the server ends with no sockets and no rooms.
	for _, c := range clients {
		c.Drop()
	}
	waitSockets(t, url, 0)
}

func total(m map[[2]int]int) int {
	s := 0
	for _, v := range m {
		s += v
	}
	return s
}

// waitSockets polls /health until the router counts want sockets.
func waitSockets(t *testing.T, url string, want int) {
	t.Helper()
	var got float64 = -1
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(url + "/health")
		if err != nil {
			t.Fatal(err)
		}
		var h map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		if got = h["sockets"].(float64); int(got) == want {
			return
		}
	}
	t.Fatalf("health reports %v sockets, want %d", got, want)
}
