package cluster

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/clustertest"
	"github.com/rtcio/rtcio-router/internal/jsclient"
)

// The recovery window of the rolling restart tests: longer than any
// reconnect through HAProxy takes here, short enough that a session the
// cluster failed to keep is cleaned up (and its peers told) before the
// test ends, so that a broken recovery shows as #rtcio:peer-left.
const rollingWindow = 6 * time.Second

// deadNodeNoticed bounds how long after a SIGKILL the other nodes take to
// claim the dead node (its liveness key expires after 10s, checked every
// 2s) and run the cleanup it left: with a margin, the time a killed node's
// test keeps going, so that a cleanup run wrongly for a session already
// recovered shows up as #rtcio:peer-left.
const deadNodeNoticed = 16 * time.Second

// relayEvery is the pace of each client's stream of relays to every other:
// three relays per tick, twelve streams in all.
const relayEvery = 100 * time.Millisecond

// TestRollingRestart is a deploy of the example cluster with recovery on:
// four clients in one room, spread over both nodes, relay sequence-numbered
// #rtcio:message to each other without a pause while node1 is restarted
// (SIGTERM, started again on its address, healthy and back in HAProxy),
// then node2. Every client whose node went away must get its session back
// on the other node, and no peer may hear of it: no #rtcio:peer-left, no
// user-disconnected, no relay twice, none lost that its sender sent while
// connected.
func TestRollingRestart(t *testing.T) {
	t.Parallel()
	rollThrough(t, syscall.SIGTERM, 0, 1)
}

// TestNodeKilledKeepsCalls is the same with node1 killed (SIGKILL: no
// drain, nothing written at exit) and started again: its clients find their
// sessions on whichever node they reach (the other, or node1 already back)
// all the same. Only relays its clients sent as it died may be lost (see
// inFlightAtKill); they are counted apart.
func TestNodeKilledKeepsCalls(t *testing.T) {
	t.Parallel()
	rollThrough(t, syscall.SIGKILL, 0)
}

// rollThrough runs the room and its relay streams, stops the nodes at
// order (indexes into the cluster's nodes) one after the other with sig,
// each started again before the next, and counts what the clients saw.
func rollThrough(t *testing.T, sig syscall.Signal, order ...int) {
	c := clustertest.Start(t, "haproxy.cfg", "  recovery: "+rollingWindow.String()+"\n")
	js := jsclient.Start(t)

	// Two clients that start on long-polling and upgrade (they keep the
	// SERVERID cookie, as browsers do) and two WebSocket-only ones
	// (balanced by leastconn alone); leastconn alternates the nodes.
	var clients []*client
	for i := 0; i < 4; i++ {
		k := kinds[i%2]
		opts := map[string]any{"reconnectionDelay": 200, "reconnectionDelayMax": 1000}
		for key, v := range k.opts {
			opts[key] = v
		}
		jc := js.Connect(fmt.Sprintf("%s-%d", k.name, i/2+1), c.LB.URL(), opts).WithT(t)
		cl := &client{Client: jc, kind: k.name, sid: jc.WaitConnected()}
		jc.WaitTransport(k.transport)
		cl.node = c.NodeOf(t, cl.sid)
		clients = append(clients, cl)
	}
	for _, i := range order {
		if !slices.ContainsFunc(clients, func(cl *client) bool { return cl.node == c.Nodes[i] }) {
			t.Fatalf("no client on %s: restarting it would move nobody", c.Nodes[i].Name)
		}
	}
	for _, cl := range clients {
		t.Logf("%s (%s) on %s", cl.Name(), cl.sid, cl.node.Name)
	}
	checkRoom(t, clients)

	rl := startRelays(t, clients)
	time.Sleep(time.Second) // relays flowing before the first stop
	var lastStop time.Time
	for _, i := range order {
		lastStop = time.Now()
		old := c.Nodes[i]
		var moved []*client
		for _, cl := range clients {
			if cl.node == old {
				moved = append(moved, cl)
			}
		}
		if sig == syscall.SIGKILL {
			var held []int
			for j, cl := range clients {
				if cl.node == old {
					held = append(held, j)
				}
			}
			rl.killed(held)
		}
		c.Restart(t, i, sig)
		// Before the next node goes, the clients of this one must be back:
		// a rolling restart waits for that too (HAProxy's stats show it).
		waitBack(t, moved, 15*time.Second)
		for _, cl := range moved {
			// Recovered, it keeps its id; if not, it is a new socket, and
			// the report below tells.
			cl.node = nil
			deadline := time.Now().Add(5 * time.Second)
			for cl.node == nil && time.Now().Before(deadline) {
				for _, n := range c.Nodes {
					if id := cl.ID(); id != "" && n.Has(id) {
						cl.node = n
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
			if cl.node == nil {
				t.Errorf("%s: no node logged its socket %s", cl.Name(), cl.ID())
				cl.node = old
				continue
			}
			t.Logf("%s is on %s as %s after %s stopped", cl.Name(), cl.node.Name, cl.ID(), old.Name)
		}
		time.Sleep(time.Second) // relays flowing on the new placement
	}
	// A session the cluster failed to keep is cleaned up one second after
	// the window (a killed node's, once the node is noticed dead): keep the
	// relays going past that, so that such a failure is heard.
	settle := rollingWindow + 3*time.Second
	if sig == syscall.SIGKILL {
		settle = deadNodeNoticed
	}
	time.Sleep(time.Until(lastStop.Add(settle)))
	rl.stop()
	rl.report(t, clients)
}

// waitBack waits until every client has been away at least once and is
// connected again. Whether it got its session back is for the report.
func waitBack(t *testing.T, clients []*client, d time.Duration) {
	t.Helper()
	clustertest.Eventually(t, d, "the moved clients reconnected", func() string {
		for _, cl := range clients {
			ch := cl.Changes()
			if len(ch) < 3 || !ch[len(ch)-1].Connected {
				return fmt.Sprintf("%s (%d connects and disconnects)", cl.Name(), len(ch))
			}
		}
		return ""
	})
}

// relays is the clients' streams of #rtcio:message to each other, each
// relay numbered per pair and remembered with whether its sender was
// connected all the while it was handed to socket.io-client (a relay
// emitted while disconnected waits in the client's buffer for the
// reconnect).
type relays struct {
	done chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex
	sent  map[[2]int][]sentRelay // {from, to} -> by seq-1
	kills []kill
	errs  []error
}

type sentRelay struct {
	up bool      // its sender was connected all the while it was emitted
	at time.Time // when it was emitted
}

// kill is a node killed at a time, with the clients it held (indexes).
type kill struct {
	at      time.Time
	clients []int
}

// killed notes that the node holding clients is about to be killed.
func (rl *relays) killed(clients []int) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	rl.kills = append(rl.kills, kill{at: time.Now(), clients: clients})
}

// inFlightAtKill reports whether a relay of client from, sent at, may have
// died with a killed node: sent at most one tick before the kill (it may sit
// unread in the dead process's socket buffer) and before its sender noticed
// (written to a connection nobody reads). Nothing can save those; every
// other relay must arrive.
func (rl *relays) inFlightAtKill(from *client, i int, at time.Time) bool {
	for _, k := range rl.kills {
		if !slices.Contains(k.clients, i) || at.Before(k.at.Add(-relayEvery)) {
			continue
		}
		for _, ch := range from.Changes() {
			if !ch.Connected && ch.At.After(k.at) {
				return !at.After(ch.At)
			}
		}
	}
	return false
}

func startRelays(t *testing.T, clients []*client) *relays {
	rl := &relays{done: make(chan struct{}), sent: map[[2]int][]sentRelay{}}
	for i := range clients {
		rl.wg.Add(1)
		go rl.run(clients, i)
	}
	t.Cleanup(rl.stop)
	return rl
}

func (rl *relays) run(clients []*client, from int) {
	defer rl.wg.Done()
	cl := clients[from]
	tick := time.NewTicker(relayEvery)
	defer tick.Stop()
	for {
		select {
		case <-rl.done:
			return
		case <-tick.C:
		}
		for to, target := range clients {
			if to == from {
				continue
			}
			k := [2]int{from, to}
			rl.mu.Lock()
			seq := len(rl.sent[k]) + 1
			rl.mu.Unlock()
			at := time.Now()
			before := cl.Changes()
			up := len(before) > 0 && before[len(before)-1].Connected
			err := cl.TryEmit("#rtcio:message", map[string]any{
				"target": target.sid, "data": map[string]any{"from": cl.Name(), "seq": seq},
			})
			up = up && len(cl.Changes()) == len(before)
			rl.mu.Lock()
			if err != nil {
				rl.errs = append(rl.errs, err)
			} else {
				rl.sent[k] = append(rl.sent[k], sentRelay{up: up, at: at})
			}
			rl.mu.Unlock()
		}
	}
}

func (rl *relays) stop() {
	select {
	case <-rl.done:
	default:
		close(rl.done)
	}
	rl.wg.Wait()
}

// received returns, per seq, how often to got the relays of from.
func received(to, from *client) map[int]int {
	n := map[int]int{}
	for _, ev := range to.Received() {
		if ev.Name != "#rtcio:message" || len(ev.Args) != 1 {
			continue
		}
		m, _ := ev.Args[0].(map[string]any)
		d, _ := m["data"].(map[string]any)
		if m["source"] != from.sid || m["target"] != to.sid || d["from"] != from.Name() {
			continue
		}
		if seq, ok := d["seq"].(float64); ok {
			n[int(seq)]++
		}
	}
	return n
}

// droppedByClient reports whether from's socket.io-client discarded relay
// seq to to itself (jsclient.Dropped): it counted itself connected, but
// wrote the packet to a WebSocket that had already read the server's close
// frame, or left it in its engine's write buffer at the close. No server
// received it, so none can deliver it.
func droppedByClient(from, to *client, seq int) bool {
	for _, d := range from.Dropped() {
		i := strings.IndexByte(d.Packet, '[')
		if i < 0 {
			continue
		}
		var ev []any
		if json.Unmarshal([]byte(d.Packet[i:]), &ev) != nil || len(ev) != 2 || ev[0] != "#rtcio:message" {
			continue
		}
		m, _ := ev[1].(map[string]any)
		data, _ := m["data"].(map[string]any)
		if m["target"] == to.sid && data["from"] == from.Name() && data["seq"] == float64(seq) {
			return true
		}
	}
	return false
}

// offsets returns the offsets (the packet ids connection state recovery
// appends) with which to got relay seq of from, copy by copy: what tells
// a replay of an event the client had (the same offset twice) from an
// event sent twice.
func offsets(to, from *client, seq int) []string {
	var out []string
	for _, ev := range to.Received() {
		if ev.Name != "#rtcio:message" || len(ev.Args) != 1 {
			continue
		}
		m, _ := ev.Args[0].(map[string]any)
		d, _ := m["data"].(map[string]any)
		if m["source"] == from.sid && d["from"] == from.Name() && d["seq"] == float64(seq) {
			out = append(out, ev.Offset)
		}
	}
	return out
}

// offsetsBack counts the events cl got whose offset (a Redis stream id,
// "ms-seq") is older than the previous event's.
func offsetsBack(cl *client) int {
	var n int
	var last [2]int64
	for _, ev := range cl.Received() {
		ms, seq, ok := strings.Cut(ev.Offset, "-")
		if !ok {
			continue
		}
		a, err1 := strconv.ParseInt(ms, 10, 64)
		b, err2 := strconv.ParseInt(seq, 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		if a < last[0] || a == last[0] && b < last[1] {
			n++
		}
		last = [2]int64{a, b}
	}
	return n
}

// report waits for the relays in flight, then counts and checks what the
// clients saw, and logs how long each was without signaling.
func (rl *relays) report(t *testing.T, clients []*client) {
	t.Helper()
	for _, err := range rl.errs {
		t.Errorf("emit: %v", err)
	}
	missing := func(connectedOnly bool) (n int) {
		rl.mu.Lock()
		defer rl.mu.Unlock()
		for k, sent := range rl.sent {
			got := received(clients[k[1]], clients[k[0]])
			for i, r := range sent {
				if got[i+1] == 0 && (r.up || !connectedOnly) {
					n++
				}
			}
		}
		return n
	}
	// Deadlines generous for a loaded machine; nothing is timed here. What
	// is still missing then is counted below.
	for _, d := range []struct {
		connectedOnly bool
		within        time.Duration
	}{{true, 10 * time.Second}, {false, 3 * time.Second}} {
		deadline := time.Now().Add(d.within)
		for missing(d.connectedOnly) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	time.Sleep(300 * time.Millisecond) // for duplicates to show up

	var total, totalUp, lost, lostUp, lostAtKill, lostByClient, dup, reordered int
	rl.mu.Lock()
	keys := make([][2]int, 0, len(rl.sent))
	for k := range rl.sent {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]*10+keys[i][1] < keys[j][0]*10+keys[j][1] })
	for _, k := range keys {
		from, to := clients[k[0]], clients[k[1]]
		got := received(to, from)
		for i, r := range rl.sent[k] {
			total++
			if r.up {
				totalUp++
			}
			switch n := got[i+1]; {
			case n == 0 && droppedByClient(from, to, i+1):
				lost++
				lostByClient++
				t.Logf("%s -> %s: relay %d was discarded by its sender's socket.io-client (written as its WebSocket closed), never sent", from.Name(), to.Name(), i+1)
			case n == 0 && r.up && rl.inFlightAtKill(from, k[0], r.at):
				lost++
				lostAtKill++
				t.Logf("%s -> %s: relay %d, sent as its node was killed, never arrived", from.Name(), to.Name(), i+1)
			case n == 0 && r.up:
				lost++
				lostUp++
				t.Errorf("%s -> %s: relay %d, sent while connected, never arrived", from.Name(), to.Name(), i+1)
			case n == 0:
				lost++
			case n > 1:
				dup += n - 1
				t.Errorf("%s -> %s: relay %d arrived %d times, with offsets %q", from.Name(), to.Name(), i+1, n, offsets(to, from, i+1))
			}
		}
		last := 0
		for _, ev := range to.Received() {
			if ev.Name != "#rtcio:message" || len(ev.Args) != 1 {
				continue
			}
			m, _ := ev.Args[0].(map[string]any)
			d, _ := m["data"].(map[string]any)
			if m["source"] != from.sid || d["from"] != from.Name() {
				continue
			}
			seq, _ := d["seq"].(float64)
			if int(seq) < last {
				reordered++
			}
			last = max(last, int(seq))
		}
	}
	rl.mu.Unlock()

	var peerLeft, userDisc int
	for _, cl := range clients {
		for _, ev := range cl.Received() {
			switch ev.Name {
			case "#rtcio:peer-left":
				peerLeft++
				t.Errorf("%s heard %s", cl.Name(), ev)
			case "user-disconnected":
				userDisc++
				t.Errorf("%s heard %s", cl.Name(), ev)
			}
		}
	}
	t.Logf("relays: %d sent (%d while the sender was connected), %d lost (%d of those sent while connected, %d more in flight to a killed node, %d more discarded by the sender's client), %d duplicated, %d out of order",
		total, totalUp, lost, lostUp, lostAtKill, lostByClient, dup, reordered)
	t.Logf("#rtcio:peer-left heard: %d; user-disconnected heard: %d", peerLeft, userDisc)
	for _, cl := range clients {
		if n := offsetsBack(cl); n > 0 {
			// socket.io-client reports the offset of the last event it got
			// when it recovers: after one of these, the events between are
			// replayed although it had them.
			t.Logf("%s got %d events with an offset older than the one before", cl.Name(), n)
		}
	}

	for _, cl := range clients {
		var gaps []string
		var away time.Duration
		var down time.Time
		for i, ch := range cl.Changes() {
			switch {
			case !ch.Connected:
				down = ch.At
			case i == 0:
			default:
				gap := ch.At.Sub(down)
				away += gap
				gaps = append(gaps, gap.Round(time.Millisecond).String())
				if !ch.Recovered || ch.SID != cl.sid {
					t.Errorf("%s reconnected as %s (recovered=%v), want its session %s back", cl.Name(), ch.SID, ch.Recovered, cl.sid)
				}
			}
		}
		if !cl.Connected() {
			t.Errorf("%s is not connected at the end", cl.Name())
		}
		t.Logf("%s without signaling: %v in all %v", cl.Name(), away.Round(time.Millisecond), gaps)
	}
}
