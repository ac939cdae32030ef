package router

// Redis round trips of the cluster's hot paths, counted by a go-redis hook
// on each node's client, and the cross-node relay as a profile target. The
// figures are in bench/README.md ("Cluster"):
//
//	go test -run ClusterRoundTrips -v ./router/
//	go test -run '^$' -bench ClusterRelay -benchtime 1x -cpuprofile cpu.out ./router/
//
// Each runs with connection state recovery off (the default) and on
// ("recovery": every delivery kept in Redis, recovery_cluster.go).
//	go test -run '^$' -bench ClusterJoinRoom ./router/

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rtcio/rtcio-router/bench/load"
	"github.com/rtcio/rtcio-router/bench/sio"
	"github.com/rtcio/rtcio-router/internal/redistest"
)

// tripCounter counts a node's round trips to Redis: one per command sent
// alone, one per pipeline (or transaction) whatever it holds. The node's
// own background calls (heartbeat, the watcher's INFO and dead-node
// lookup) are left out; pub/sub deliveries are no round trip of the node's.
type tripCounter struct {
	mu    sync.Mutex
	trips int
	what  []string
}

// background are the scripts the heartbeat and the watcher run.
var background = map[string]bool{scriptHeartbeat.Hash(): true, scriptDeadNodes.Hash(): true, scriptExpired.Hash(): true}

// scriptNames names the registry's scripts by SHA, for the report.
var scriptNames = map[string]string{
	scriptJoin.Hash(): "join.lua", scriptLeave.Hash(): "leave.lua", scriptForget.Hash(): "forget.lua",
	scriptSetData.Hash(): "setdata.lua", scriptStoreField.Hash(): "storefield.lua", scriptSyncStores.Hash(): "syncstores.lua",
	scriptRestore.Hash(): "restore.lua", scriptClaim.Hash(): "claim.lua", scriptRelease.Hash(): "release.lua",
	scriptInbox.Hash(): "inbox.lua", scriptSuspend.Hash(): "suspend.lua", scriptDrop.Hash(): "drop.lua",
	scriptSession.Hash(): "session.lua", scriptTakeover.Hash(): "takeover.lua",
}

func cmdName(c redis.Cmder) string {
	name := strings.ToUpper(c.Name())
	if args := c.Args(); (name == "EVALSHA" || name == "EVAL") && len(args) > 1 {
		sha, _ := args[1].(string)
		if background[sha] {
			return ""
		}
		if s, ok := scriptNames[sha]; ok {
			return s
		}
	}
	if name == "INFO" {
		return ""
	}
	return name
}

func (tc *tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (tc *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if n := cmdName(cmd); n != "" {
			tc.mu.Lock()
			tc.trips++
			tc.what = append(tc.what, n)
			tc.mu.Unlock()
		}
		return next(ctx, cmd)
	}
}

func (tc *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		var names []string
		for _, c := range cmds {
			if n := cmdName(c); n != "" && n != "MULTI" && n != "EXEC" {
				names = append(names, n)
			}
		}
		if len(names) > 0 {
			tc.mu.Lock()
			tc.trips++
			tc.what = append(tc.what, "pipeline("+strings.Join(names, " ")+")")
			tc.mu.Unlock()
		}
		return next(ctx, cmds)
	}
}

// take returns the round trips since the last take and what they were.
func (tc *tripCounter) take() (int, []string) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	n, w := tc.trips, tc.what
	tc.trips, tc.what = 0, nil
	return n, w
}

// benchNode is a cluster node of these benchmarks, with its counter.
type benchNode struct {
	r   *Router
	url string
	tc  *tripCounter
}

// startBenchCluster runs n nodes of the built-in rules (relay limit off,
// as in bench/) on a private Redis.
func startBenchCluster(t testing.TB, n int) (*redistest.Server, []benchNode) {
	return startBenchClusterRecovery(t, n, false)
}

// startBenchClusterRecovery is startBenchCluster with, when recovery is
// set, server.recovery on (2m).
func startBenchClusterRecovery(t testing.TB, n int, recovery bool) (*redistest.Server, []benchNode) {
	t.Helper()
	src, err := os.ReadFile("../rtcio.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if recovery {
		src = []byte(strings.Replace(string(src), "\nserver:\n", "\nserver:\n  recovery: 2m\n", 1))
	}
	rs := redistest.Start(t)
	var nodes []benchNode
	for range n {
		rt, err := New(Options{RulesFile: "rtcio.yaml", Source: load.BenchRules(src), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Environ: map[string]string{}, Redis: rs.URL()})
		if err != nil {
			t.Fatal(err)
		}
		tc := &tripCounter{}
		rt.cl.rdb.AddHook(tc)
		_, url := serveOnLoopback(t, rt)
		nodes = append(nodes, benchNode{r: rt, url: url, tc: tc})
	}
	return rs, nodes
}

// frames is a client that counts the events it receives, by name.
type frames struct {
	c      *sio.Conn
	mu     sync.Mutex
	seen   map[string]int
	notify chan struct{}
}

func dialFrames(t testing.TB, url string) *frames {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := sio.Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	f := &frames{c: c, seen: map[string]int{}, notify: make(chan struct{}, 1)}
	go func() {
		_ = c.Serve(func(b []byte) {
			name, ok := eventName(b)
			if !ok {
				return
			}
			f.mu.Lock()
			f.seen[name]++
			f.mu.Unlock()
			select {
			case f.notify <- struct{}{}:
			default:
			}
		})
	}()
	t.Cleanup(func() { _ = c.Close() })
	return f
}

// eventName reads the name of a socket.io EVENT frame: 42["name",…].
func eventName(b []byte) (string, bool) {
	rest, ok := strings.CutPrefix(string(b), `42["`)
	if !ok {
		return "", false
	}
	name, _, ok := strings.Cut(rest, `"`)
	return name, ok
}

func (f *frames) send(t testing.TB, event, payload string) {
	t.Helper()
	if err := f.c.Write(sio.Event(event, []byte(payload))); err != nil {
		t.Fatal(err)
	}
}

// expect waits until n events of that name arrived that no earlier expect
// took, and takes them.
func (f *frames) expect(t testing.TB, event string, n int) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		f.mu.Lock()
		if f.seen[event] >= n {
			f.seen[event] -= n
			f.mu.Unlock()
			return
		}
		have := f.seen[event]
		f.mu.Unlock()
		select {
		case <-f.notify:
		case <-deadline:
			t.Fatalf("%s: %d of %d %s", f.c.ID, have, n, event)
		}
	}
}

// waitMembers waits until room has n members: a join whose sender hears
// of nobody has no event to wait for.
func waitMembers(t testing.TB, r *Router, room string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.st.mu.RLock()
		have := len(r.st.members(room))
		r.st.mu.RUnlock()
		if have >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("room %s: %d of %d members", room, have, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// roundTrips is what each node sent Redis for one step, per run of it.
type roundTrips struct {
	step  string
	trips []float64
	what  [][]string
	cmds  float64 // Redis commands run, scripts' inner calls and the nodes' heartbeats included
}

// measure runs step reps times and returns each node's round trips per
// run, what the first run's were, and the commands Redis ran per run.
func measure(t testing.TB, rs *redistest.Server, nodes []benchNode, name string, reps int, step func()) roundTrips {
	t.Helper()
	time.Sleep(50 * time.Millisecond) // what came before has settled
	for _, n := range nodes {
		n.tc.take()
	}
	c0, err := load.RedisCommands(rs.Addr)
	if err != nil {
		t.Fatal(err)
	}
	for range reps {
		step()
	}
	time.Sleep(50 * time.Millisecond)
	c1, _ := load.RedisCommands(rs.Addr)
	rt := roundTrips{step: name, cmds: float64(c1-c0) / float64(reps)}
	for _, n := range nodes {
		k, w := n.tc.take()
		rt.trips = append(rt.trips, float64(k)/float64(reps))
		rt.what = append(rt.what, w[:len(w)/reps])
	}
	return rt
}

// TestClusterRoundTrips counts the Redis round trips of a join-room of the
// built-in rules into a room of 3 (media states cached), a relay between
// two sockets of one node, a relay to a socket of another node, and a
// media-state into a room of 4. Node A holds the sender; the room's other
// members are spread over A and B. A relay between two sockets of one node
// must make none; with recovery on, every relay makes one on the sender's
// node (inbox.lua) and none on the receiver's.
func TestClusterRoundTrips(t *testing.T) {
	for _, recovery := range []bool{false, true} {
		t.Run(fmt.Sprintf("recovery=%v", recovery), func(t *testing.T) { clusterRoundTrips(t, recovery) })
	}
}

func clusterRoundTrips(t *testing.T, recovery bool) {
	rs, nodes := startBenchClusterRecovery(t, 2, recovery)
	a, b := nodes[0], nodes[1]
	join := func(f *frames, room string) {
		f.send(t, "join-room", `{"roomId":"`+room+`","name":"`+f.c.ID+`"}`)
	}
	media := func(f *frames, room string) {
		f.send(t, "media-state", `{"roomId":"`+room+`","mic":true,"cam":false}`)
	}
	// Warm-up in another room: every script is loaded (EVALSHA, not EVAL).
	w1, w2 := dialFrames(t, a.url), dialFrames(t, b.url)
	join(w1, "warm")
	waitMembers(t, a.r, "warm", 1)
	join(w2, "warm")
	w1.expect(t, "#rtcio:init-offer", 1)
	media(w1, "warm")
	w2.expect(t, "media-state", 1)

	// The room of 3: m1 and m3 on B, m2 on A, each with a cached media state.
	m1, m2, m3 := dialFrames(t, b.url), dialFrames(t, a.url), dialFrames(t, b.url)
	for i, m := range []*frames{m1, m2, m3} {
		join(m, "r")
		m.expect(t, "user-connected", i)
		waitMembers(t, a.r, "r", i+1)
		for _, prev := range []*frames{m1, m2, m3}[:i] {
			prev.expect(t, "#rtcio:init-offer", 1)
		}
		media(m, "r")
		for _, prev := range []*frames{m1, m2, m3}[:i] {
			prev.expect(t, "media-state", 1)
		}
	}
	x := dialFrames(t, a.url) // the joiner, on A
	var steps []roundTrips
	steps = append(steps, measure(t, rs, nodes, "join-room into a room of 3 (2 members on the other node), media states cached", 1, func() {
		join(x, "r")
		x.expect(t, "user-connected", 3)
		x.expect(t, "media-state", 3)
		for _, m := range []*frames{m1, m2, m3} {
			m.expect(t, "#rtcio:init-offer", 1)
		}
	}))
	relay := func(from, to *frames) {
		from.send(t, "#rtcio:message", `{"target":"`+to.c.ID+`","data":{"candidate":"c"}}`)
		to.expect(t, "#rtcio:message", 1)
	}
	steps = append(steps, measure(t, rs, nodes, "relay between two sockets of node A", 100, func() { relay(x, m2) }))
	steps = append(steps, measure(t, rs, nodes, "relay from node A to a socket of node B", 100, func() { relay(x, m1) }))
	steps = append(steps, measure(t, rs, nodes, "media-state into the room of 4", 20, func() {
		media(x, "r")
		for _, m := range []*frames{m1, m2, m3} {
			m.expect(t, "media-state", 1)
		}
	}))
	fmt.Fprintf(os.Stderr, "recovery %v:\n", recovery)
	fmt.Fprintln(os.Stderr, "| step | round trips, node A (sender) | node B | Redis commands run (scripts' inner calls and heartbeats included) | node A's calls |")
	fmt.Fprintln(os.Stderr, "|---|--:|--:|--:|---|")
	for _, s := range steps {
		fmt.Fprintf(os.Stderr, "| %s | %.3g | %.3g | %.3g | %s |\n", s.step, s.trips[0], s.trips[1], s.cmds, strings.Join(s.what[0], ", "))
		if len(s.what[1]) > 0 {
			t.Logf("%s: node B: %s", s.step, strings.Join(s.what[1], ", "))
		}
	}
	if recovery {
		// What Redis keeps for m1's session on top of its socket: its
		// stream of the events sent to it (100 relays of ~60 B, the room's
		// events), which it keeps while suspended too.
		rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
		defer rdb.Close()
		ctx := context.Background()
		inbox := "{rtcio}:inbox:" + m1.c.ID
		n, _ := rdb.XLen(ctx, inbox).Result()
		bytes, _ := rdb.MemoryUsage(ctx, inbox).Result()
		sock, _ := rdb.MemoryUsage(ctx, "{rtcio}:sock:"+m1.c.ID).Result()
		fmt.Fprintf(os.Stderr, "one session's stream: %d events in %d B (%.0f B an event); its record %d B\n", n, bytes, float64(bytes)/float64(max(n, 1)), sock)
		for _, s := range steps[1:3] {
			// A watcher check (INFO, every 2 s) may fall within the steps.
			if s.trips[0] < 1 || s.trips[0] > 1.05 || s.trips[1] > 0.05 {
				t.Errorf("%s: %g+%g round trips per relay (%v): want 1 on the sender's node, none on the receiver's", s.step, s.trips[0], s.trips[1], s.what)
			}
		}
		return
	}
	if s := steps[1]; s.trips[0]+s.trips[1] != 0 {
		t.Errorf("a relay between two sockets of one node made %g+%g round trips per relay (%v): want none", s.trips[0], s.trips[1], s.what)
	}
}

// BenchmarkClusterRelay saturates the relay (16 pairs, 16 pings in flight
// each) for 3 s on two in-process nodes: "cross" puts the two sockets of
// each pair on different nodes, "same" both on node A. A profile target:
//
//	go test -run '^$' -bench ClusterRelay/cross -benchtime 1x -cpuprofile cpu.out ./router/
func BenchmarkClusterRelay(b *testing.B) {
	for _, mode := range []string{"cross", "same", "cross-recovery", "same-recovery"} {
		b.Run(mode, func(b *testing.B) {
			_, nodes := startBenchClusterRecovery(b, 2, strings.HasSuffix(mode, "-recovery"))
			tg := load.Target{URL: nodes[0].url, Nodes: []string{nodes[0].url, nodes[1].url}}
			if strings.HasPrefix(mode, "same") {
				tg.Nodes = tg.Nodes[:1]
			}
			for b.Loop() {
				figs, err := load.RelayMax(context.Background(), tg, 16, 16, load.Candidate, load.Timing{Warmup: 500 * time.Millisecond, Measure: 3 * time.Second})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(figs[0].Value, "msgs/s")
			}
		})
	}
}

// BenchmarkClusterJoinRoom: one join-room of the built-in rules into a
// room of 3 on two nodes, with the media store holding entries of other
// sockets (other rooms): what one join costs as the cluster grows.
func BenchmarkClusterJoinRoom(b *testing.B) {
	for _, others := range []int{0, 1000, 10000} {
		b.Run(fmt.Sprintf("media-entries=%d", others), func(b *testing.B) {
			rs, nodes := startBenchCluster(b, 2)
			if others > 0 {
				c := redis.NewClient(&redis.Options{Addr: rs.Addr})
				defer c.Close()
				ctx := context.Background()
				args := make([]any, 0, 2*others)
				for i := range others {
					args = append(args, fmt.Sprintf("other%06d", i), `{"cam":false,"mic":true}`)
				}
				if err := c.HSet(ctx, "{rtcio}:store:media", args...).Err(); err != nil {
					b.Fatal(err)
				}
			}
			m := []*frames{dialFrames(b, nodes[1].url), dialFrames(b, nodes[0].url), dialFrames(b, nodes[1].url)}
			for i, f := range m {
				f.send(b, "join-room", `{"roomId":"r","name":"m"}`)
				f.expect(b, "user-connected", i)
				waitMembers(b, nodes[0].r, "r", i+1)
			}
			for b.Loop() {
				b.StopTimer()
				x := dialFrames(b, nodes[0].url)
				b.StartTimer()
				x.send(b, "join-room", `{"roomId":"r","name":"x"}`)
				x.expect(b, "user-connected", 3)
				for _, f := range m {
					f.expect(b, "#rtcio:init-offer", 1)
				}
				b.StopTimer()
				_ = x.c.Close()
				for _, f := range m {
					f.expect(b, "user-disconnected", 1)
				}
				b.StartTimer()
			}
		})
	}
}
