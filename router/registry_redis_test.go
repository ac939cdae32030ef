package router

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rtcio/rtcio-router/internal/redistest"
)

// newTestRedisClient connects to srv, closed when t ends.
func newTestRedisClient(t testing.TB, srv *redistest.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: 64})
	t.Cleanup(func() { c.Close() })
	return c
}

// newTestRedisRegistry is node's registry on c, logging to the test.
func newTestRedisRegistry(t testing.TB, c redis.UniversalClient, node string) *redisRegistry {
	t.Helper()
	reg, err := newRedisRegistry(redisRegistryOptions{
		Client: c, Node: node, Prefix: "t",
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// twoNodes is a cluster of two nodes, a and b, on one Redis.
type twoNodes struct {
	a, b *redisRegistry
}

// TestRedisRegistryCrossNode holds two nodes on one Redis to what the
// cluster promises: each sees the other's sockets, rooms and stores, and
// the scripts keep join's snapshot exact across nodes.
func TestRedisRegistryCrossNode(t *testing.T) {
	srv := redistest.Start(t)
	client := newTestRedisClient(t, srv)
	runCrossNodeCases(t, client, func(t *testing.T) redis.UniversalClient {
		// Each node has a client of its own, as two processes would.
		return newTestRedisClient(t, srv)
	})
}

// runCrossNodeCases runs crossNodeCases with nodes A and B, each with a
// client newClient makes, on the Redis that admin empties between cases.
func runCrossNodeCases(t *testing.T, admin redis.UniversalClient, newClient func(t *testing.T) redis.UniversalClient) {
	for _, tc := range crossNodeCases {
		t.Run(tc.name, func(t *testing.T) {
			if err := admin.FlushAll(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
			n := twoNodes{newTestRedisRegistry(t, newClient(t), "A"), newTestRedisRegistry(t, newClient(t), "B")}
			set := storesSet(t, map[string]string{"sock": "socket", "room": "room", "glob": "global"})
			n.a.syncStores(set)
			n.b.syncStores(set)
			tc.run(t, n)
			if f := n.a.failures() + n.b.failures(); f != 0 {
				t.Errorf("%d failed calls", f)
			}
		})
	}
}

// TestRedisRegistryCluster runs the conformance and cross-node cases over
// a redis.ClusterClient on a Redis Cluster (of one server holding every
// slot): the client routes each script by its first key, and the server
// checks the slots of scripts' keys, which a plain server does not.
func TestRedisRegistryCluster(t *testing.T) {
	addr := startRedisCluster(t)
	newClient := func(t *testing.T) redis.UniversalClient {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}})
		t.Cleanup(func() { c.Close() })
		return c
	}
	admin := newClient(t)
	t.Run("conformance", func(t *testing.T) {
		runRegistryCases(t, func(t *testing.T) registry {
			if err := admin.FlushAll(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
			return newTestRedisRegistry(t, newClient(t), "n1")
		})
	})
	t.Run("cross-node", func(t *testing.T) { runCrossNodeCases(t, admin, newClient) })
}

// startRedisCluster runs a redis-server in cluster mode holding every
// slot, for t, and returns its address. (redistest starts plain servers.)
func startRedisCluster(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is not installed; CI must not skip")
		}
		t.Skip("redis-server not on PATH")
	}
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
		"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"), "--daemonize", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx := context.Background()
	deadline := time.Now().Add(15 * time.Second)
	slotted := false
	for {
		if !slotted {
			slotted = c.ClusterAddSlotsRange(ctx, 0, 16383).Err() == nil
		}
		if info, err := c.ClusterInfo(ctx).Result(); err == nil && strings.Contains(info, "cluster_state:ok") {
			return addr
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			t.Fatalf("redis cluster on %s not ready: %s", addr, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// addConn registers a socket with id on reg.
func addConn(reg registry, id string, data map[string]any) *conn {
	if data == nil {
		data = map[string]any{}
	}
	c := &conn{id: id, data: data}
	reg.add(c)
	return c
}

var crossNodeCases = []struct {
	name string
	run  func(t *testing.T, n twoNodes)
}{
	{"concurrent joins from both nodes", func(t *testing.T, n twoNodes) {
		const perNode, rounds = 25, 10
		var conns []*conn
		var regs []*redisRegistry
		for i := range 2 * perNode {
			reg := n.a
			if i%2 == 1 {
				reg = n.b
			}
			conns = append(conns, addConn(reg, fmt.Sprintf("s%02d", i), nil))
			regs = append(regs, reg)
		}
		for round := range rounds {
			room := fmt.Sprint("room", round)
			befores := make([][]string, len(conns))
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range conns {
				wg.Go(func() {
					<-start
					before, added := regs[i].join(conns[i], room)
					if !added {
						t.Errorf("%s not added", conns[i].id)
					}
					befores[i] = before
				})
			}
			close(start)
			wg.Wait()
			members := n.a.members(room)
			if len(members) != len(conns) {
				t.Fatalf("round %d: %d members", round, len(members))
			}
			for i, c := range conns {
				// The snapshot is exact: what was there, in join order, just
				// before the socket's own place.
				at := slices.Index(members, c.id)
				if !slices.Equal(befores[i], members[:at]) {
					t.Errorf("round %d: %s's before %v, members %v", round, c.id, befores[i], members)
				}
				for j := i + 1; j < len(conns); j++ {
					seen := 0
					if slices.Contains(befores[i], conns[j].id) {
						seen++
					}
					if slices.Contains(befores[j], c.id) {
						seen++
					}
					if seen != 1 {
						t.Errorf("round %d: %s and %s heard of each other %d times", round, c.id, conns[j].id, seen)
					}
				}
			}
			var left sync.WaitGroup
			for i := range conns {
				left.Go(func() { regs[i].leave(conns[i], room) })
			}
			left.Wait()
			if n.b.roomSize(room) != 0 {
				t.Errorf("round %d: room not emptied", round)
			}
			for _, c := range conns {
				if len(c.rooms) != 0 {
					t.Errorf("%s's rooms %v", c.id, c.rooms)
				}
			}
		}
	}},
	{"a socket on B seen from A", func(t *testing.T, n twoNodes) {
		x := addConn(n.b, "x", map[string]any{"name": "xavier", "n": 3})
		y := addConn(n.a, "y", nil)
		n.b.join(x, "r1")
		n.b.join(x, "r2")
		before, _ := n.a.join(y, "r2")
		wantList(t, "y's before", before, "x")
		if n.a.socket("x") != nil || n.a.count() != 1 {
			t.Error("A holds B's socket as its own")
		}
		if !n.a.connected("x") {
			t.Error("A does not see x connected")
		}
		wantList(t, "members from A", n.a.members("r1"), "x")
		if !n.a.inRoom("r1", "x") || n.a.inRoom("r3", "x") {
			t.Error("inRoom from A")
		}
		wantList(t, "roomsOf from A", n.a.roomsOf("x"), "r1", "r2")
		if !n.a.shareRoom(y, "x") {
			t.Error("A does not see y and x share r2")
		}
		if !n.b.shareRoom(x, "y") {
			t.Error("B does not see x and y share r2")
		}
		if got := n.a.socketData("x"); !reflect.DeepEqual(got, map[string]any{"name": "xavier", "n": 3}) {
			t.Errorf("socketData from A: %v", got)
		}
		n.b.setData(x, []string{"name"}, []any{nil})
		if got := n.a.socketData("x"); !reflect.DeepEqual(got, map[string]any{"n": 3}) {
			t.Errorf("socketData from A after B's setData: %v", got)
		}
		n.b.leave(x, "r2")
		if n.a.shareRoom(y, "x") {
			t.Error("A sees y and x share a room x left")
		}
		wantList(t, "r2 after x left", n.a.members("r2"), "y")
	}},
	{"forget on B cleans up for A", func(t *testing.T, n twoNodes) {
		x := addConn(n.b, "x", nil)
		y := addConn(n.a, "y", nil)
		n.b.join(x, "solo")
		n.b.join(x, "shared")
		n.a.join(y, "shared")
		n.a.storeSet("room", "solo", 1)
		n.a.storeSet("room", "shared", 2)
		n.a.storeSet("sock", "x", 3)
		n.a.storeSet("sock", "y", 4)
		n.a.storeSet("glob", "x", 5)
		held := n.a.storeEntries("room") // a copy read before the forget
		n.b.forget(x)
		if n.a.connected("x") || n.b.connected("x") {
			t.Error("x still connected")
		}
		wantList(t, "solo", n.a.members("solo"))
		wantList(t, "shared", n.a.members("shared"), "y")
		wantList(t, "x's rooms", n.a.roomsOf("x"))
		if got := n.a.storeEntries("room"); !reflect.DeepEqual(got, map[string]any{"shared": 2}) {
			t.Errorf("room store from A: %v", got)
		}
		if got := n.a.storeEntries("sock"); !reflect.DeepEqual(got, map[string]any{"y": 4}) {
			t.Errorf("socket store from A: %v", got)
		}
		if got := n.a.storeEntries("glob"); !reflect.DeepEqual(got, map[string]any{"x": 5}) {
			t.Errorf("global store from A: %v", got)
		}
		if held["solo"] != 1 {
			t.Error("a copy changed by another node's write")
		}
	}},
	{"stores written on A read on B", func(t *testing.T, n twoNodes) {
		n.a.storeSet("glob", "k", map[string]any{"list": []any{1, 2}})
		n.a.storeSetField("glob", "f", "mic", true)
		if v, ok := n.b.storeGet("glob", "k"); !ok || !reflect.DeepEqual(v, map[string]any{"list": []any{1, 2}}) {
			t.Errorf("B reads %v %v", v, ok)
		}
		if got := n.b.storeEntries("glob")["f"]; !reflect.DeepEqual(got, map[string]any{"mic": true}) {
			t.Errorf("B's entries: %v", got)
		}
		// Fields written at once from both nodes all land: each write is a
		// read-modify-write in one script.
		var wg sync.WaitGroup
		for i := range 40 {
			reg := n.a
			if i%2 == 1 {
				reg = n.b
			}
			wg.Go(func() { reg.storeSetField("glob", "f", fmt.Sprint("field", i), i) })
		}
		wg.Wait()
		got, _ := n.a.storeGet("glob", "f")
		if m, _ := got.(map[string]any); len(m) != 41 {
			t.Errorf("entry after concurrent field writes has %d fields: %v", len(m), got)
		}
		n.b.storeDeleteField("glob", "f", "mic")
		if got, _ := n.a.storeGet("glob", "f"); got.(map[string]any)["mic"] != nil {
			t.Error("A reads a field B deleted")
		}
		// A node starting with the same stores keeps the entries.
		c := newTestRedisRegistry(t, n.a.rdb, "C")
		c.syncStores(storesSet(t, map[string]string{"sock": "socket", "room": "room", "glob": "global"}))
		if _, ok := c.storeGet("glob", "k"); !ok {
			t.Error("a node syncing the same stores emptied them")
		}
	}},
	{"a socket another node forgot joins nothing", func(t *testing.T, n twoNodes) {
		x := addConn(n.b, "x", nil)
		n.a.forget(&conn{id: "x"}) // as a node claiming B for dead would
		if before, added := n.b.join(x, "r"); added || len(before) != 0 {
			t.Errorf("join of a forgotten socket: %v %v", before, added)
		}
		if n.a.roomSize("r") != 0 || n.a.connected("x") {
			t.Error("a forgotten socket came back")
		}
		n.b.setData(x, []string{"k"}, []any{1})
		if n.a.socketData("x") != nil {
			t.Error("setData brought back a forgotten socket")
		}
	}},
}

// TestRedisRegistryNodeDeath: a node that stops its heartbeat is found
// dead once its key expires, and of two nodes claiming it exactly one gets
// its sockets to clean up.
func TestRedisRegistryNodeDeath(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	node := func(id string) *redisRegistry {
		reg, err := newRedisRegistry(redisRegistryOptions{
			Client: newTestRedisClient(t, srv), Node: id, Prefix: "t",
			Logger:  slog.New(slog.NewTextHandler(t.Output(), nil)),
			NodeTTL: 400 * time.Millisecond, HeartbeatEvery: 100 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := reg.start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(reg.stop)
		return reg
	}
	a, b, c := node("A"), node("B"), node("C")
	set := storesSet(t, map[string]string{"sock": "socket", "room": "room"})
	for _, reg := range []*redisRegistry{a, b, c} {
		reg.syncStores(set)
	}
	for _, id := range []string{"a1", "a2", "a3"} {
		s := addConn(a, id, nil)
		a.join(s, "ra")
		a.storeSet("sock", id, 1)
	}
	a.storeSet("room", "ra", 1)
	peer := addConn(b, "b1", nil)
	b.join(peer, "ra")

	// Alive for longer than its ttl while it beats.
	time.Sleep(600 * time.Millisecond)
	if dead, err := b.deadNodes(ctx); err != nil || len(dead) != 0 {
		t.Fatalf("dead nodes while all beat: %v %v", dead, err)
	}
	if _, ok, err := b.claimNode(ctx, "A", time.Minute); ok || err != nil {
		t.Fatalf("claimed a live node: %v %v", ok, err)
	}

	a.stop()
	deadline := time.Now().Add(5 * time.Second)
	for {
		dead, err := c.deadNodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(dead, []string{"A"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A not found dead: %v", dead)
		}
		time.Sleep(50 * time.Millisecond)
	}

	type claim struct {
		by      *redisRegistry
		sockets []string
		ok      bool
	}
	claims := make(chan claim, 2)
	for _, reg := range []*redisRegistry{b, c} {
		go func() {
			sockets, ok, err := reg.claimNode(ctx, "A", time.Minute)
			if err != nil {
				t.Error(err)
			}
			claims <- claim{reg, sockets, ok}
		}()
	}
	var winner *claim
	for range 2 {
		cl := <-claims
		if cl.ok {
			if winner != nil {
				t.Fatal("A claimed twice")
			}
			winner = &cl
		}
	}
	if winner == nil {
		t.Fatal("A claimed by nobody")
	}
	if !slices.Equal(winner.sockets, []string{"a1", "a2", "a3"}) {
		t.Errorf("A's sockets: %v", winner.sockets)
	}
	if dead, _ := b.deadNodes(ctx); len(dead) != 0 {
		t.Errorf("a node being cleaned up is listed dead: %v", dead)
	}
	if left, err := winner.by.releaseNode(ctx, "A"); err != nil || left != 3 {
		t.Errorf("release before the cleanup: %d %v", left, err)
	}
	for _, id := range winner.sockets {
		winner.by.forget(&conn{id: id})
	}
	if left, err := winner.by.releaseNode(ctx, "A"); err != nil || left != 0 {
		t.Errorf("release after the cleanup: %d %v", left, err)
	}
	wantList(t, "ra after A's cleanup", b.members("ra"), "b1")
	if got := b.storeEntries("sock"); len(got) != 0 {
		t.Errorf("A's sockets' entries kept: %v", got)
	}
	if got := b.storeEntries("room"); got["ra"] != 1 {
		t.Errorf("entry of a room still in use dropped: %v", got)
	}
	if dead, _ := c.deadNodes(ctx); len(dead) != 0 {
		t.Errorf("A still dead after its cleanup: %v", dead)
	}
	if _, ok, _ := c.claimNode(ctx, "A", time.Minute); ok {
		t.Error("A claimed again after its cleanup")
	}
	if f := a.failures() + b.failures() + c.failures(); f != 0 {
		t.Errorf("%d failed calls", f)
	}
}

// TestRedisRegistryRedisDown: with Redis gone every method returns its
// empty result, counts the failure and never panics.
func TestRedisRegistryRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialerRetries: 1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { client.Close() })
	reg := newTestRedisRegistry(t, client, "A")
	reg.syncStores(storesSet(t, map[string]string{"glob": "global"}))
	a := addConn(reg, "a", nil)
	reg.join(a, "r")
	srv.Kill()

	b := addConn(reg, "b", nil)
	if before, added := reg.join(b, "r"); added || before == nil || len(before) != 0 {
		t.Errorf("join: %v %v", before, added)
	}
	wantList(t, "leave", reg.leave(a, "r"))
	wantList(t, "members", reg.members("r"))
	wantList(t, "roomsOf", reg.roomsOf("x"))
	if reg.roomSize("r") != 0 || reg.inRoom("r", "x") || reg.connected("x") || reg.shareRoom(a, "x") || reg.socketData("x") != nil {
		t.Error("a read answered without Redis")
	}
	reg.setData(a, []string{"k"}, []any{1})
	reg.storeSet("glob", "k", 1)
	reg.storeSetField("glob", "k", "f", 1)
	reg.storeDeleteField("glob", "k", "f")
	reg.storeDelete("glob", "k")
	if v, ok := reg.storeGet("glob", "k"); ok || v != nil {
		t.Error("storeGet answered without Redis")
	}
	if got := reg.storeEntries("glob"); got == nil || len(got) != 0 {
		t.Errorf("storeEntries: %v", got)
	}
	reg.forget(a)
	if reg.socket("a") != nil || a.live {
		t.Error("forget kept the local conn")
	}
	if err := reg.start(); err == nil {
		t.Error("start without Redis")
	}
	if reg.failures() < 15 {
		t.Errorf("%d failures counted", reg.failures())
	}
}

// BenchmarkRegistry compares the in-memory registry with the Redis one
// (a local redis-server over loopback TCP): the cost of a round trip.
func BenchmarkRegistry(b *testing.B) {
	srv := redistest.Start(b)
	impls := []struct {
		name string
		new  func(b *testing.B) registry
	}{
		{"memory", func(*testing.B) registry { return newMemRegistry() }},
		{"redis", func(b *testing.B) registry {
			c := newTestRedisClient(b, srv)
			if err := c.FlushDB(context.Background()).Err(); err != nil {
				b.Fatal(err)
			}
			return newTestRedisRegistry(b, c, "A")
		}},
	}
	for _, impl := range impls {
		b.Run("join+leave/"+impl.name, func(b *testing.B) {
			reg := impl.new(b)
			reg.syncStores(storesSet(b, map[string]string{"room": "room"}))
			peers := addConn(reg, "peer", nil)
			reg.join(peers, "r")
			c := addConn(reg, "c", nil)
			for b.Loop() {
				reg.join(c, "r")
				reg.leave(c, "r")
			}
		})
		b.Run("storeSet+storeGet/"+impl.name, func(b *testing.B) {
			reg := impl.new(b)
			reg.syncStores(storesSet(b, map[string]string{"glob": "global"}))
			v := map[string]any{"mic": true, "cam": false, "name": "alice"}
			for b.Loop() {
				reg.storeSet("glob", "k", v)
				if _, ok := reg.storeGet("glob", "k"); !ok {
					b.Fatal("entry missing")
				}
			}
		})
		b.Run("storeSetField/"+impl.name, func(b *testing.B) {
			reg := impl.new(b)
			reg.syncStores(storesSet(b, map[string]string{"glob": "global"}))
			reg.storeSet("glob", "k", map[string]any{"mic": true, "cam": false, "name": "alice"})
			for b.Loop() {
				reg.storeSetField("glob", "k", "mic", false)
			}
		})
		b.Run("storeGet-of-3x100/"+impl.name, func(b *testing.B) {
			// What an expression's stores.NAME[key] pays.
			reg := impl.new(b)
			reg.syncStores(storesSet(b, map[string]string{"sock": "socket", "room": "room", "glob": "global"}))
			for _, store := range []string{"sock", "room", "glob"} {
				for i := range 100 {
					reg.storeSet(store, fmt.Sprint("k", i), map[string]any{"mic": true, "n": i})
				}
			}
			for b.Loop() {
				if _, ok := reg.storeGet("room", "k42"); !ok {
					b.Fatal("entry missing")
				}
			}
		})
	}
}

// TestRedisRegistryRouter runs one script of events through two in-process
// routers, one on memRegistry and one on redisRegistry, and requires the
// same deliveries, acks and stores at every step: the rules' view of the
// registry (store entries read one at a time, socket data and rooms read
// from conns, join's before) behaves the same over Redis.
func TestRedisRegistryRouter(t *testing.T) {
	client := newTestRedisClient(t, redistest.Start(t))
	open := func(reg registry) *Local {
		l, err := NewLocal(Options{RulesFile: "../examples/raise-hand/rtcio.yaml", Environ: map[string]string{}})
		if err != nil {
			t.Fatal(err)
		}
		if reg != nil {
			l.r.st.registry = reg
			reg.syncStores(l.Rules())
		}
		l.SetClock(time.UnixMilli(1700000000000))
		return l
	}
	redisReg := newTestRedisRegistry(t, client, "A")
	mem, red := open(nil), open(redisReg)
	type step struct {
		from, event string
		data        any
		disconnect  bool
	}
	room := func(extra map[string]any) map[string]any {
		m := map[string]any{"roomId": "r1"}
		maps.Copy(m, extra)
		return m
	}
	steps := []step{
		{from: "alice", event: "join-room", data: room(map[string]any{"name": "alice"})},
		{from: "alice", event: "raise-hand", data: room(map[string]any{"up": true})},
		{from: "alice", event: "media-state", data: room(map[string]any{"mic": true, "cam": false})},
		{from: "bob", event: "join-room", data: room(map[string]any{"name": "bob"})},
		{from: "bob", event: "raise-hand", data: room(map[string]any{"up": true})},
		{from: "bob", event: "media-state", data: room(map[string]any{"mic": false, "cam": true})},
		{from: "carol", event: "raise-hand", data: room(map[string]any{"up": true})},
		{from: "carol", event: "join-room", data: room(map[string]any{"name": "carol"})},
		{from: "alice", event: "raise-hand", data: room(map[string]any{"up": false})},
		{from: "bob", disconnect: true},
		{from: "carol", event: "leave-room", data: room(nil)},
		{from: "alice", disconnect: true},
		{from: "carol", event: "join-room", data: room(map[string]any{"name": "carol"})},
	}
	for _, l := range []*Local{mem, red} {
		for _, id := range []string{"alice", "bob", "carol"} {
			if err := l.Connect(id, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	asJSON := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for i, s := range steps {
		var got [2]string
		for j, l := range []*Local{mem, red} {
			// A millisecond per step: hands raised at the same instant tie in
			// the example's sortBy, which is not stable.
			l.Advance(time.Millisecond)
			var ack any
			var err error
			if s.disconnect {
				err = l.Disconnect(s.from, "client namespace disconnect")
			} else {
				ack, _, err = l.Send(s.from, s.event, []any{s.data}, true)
			}
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			stores := map[string]any{}
			for _, name := range []string{"media", "hands"} {
				stores[name] = l.Store(name)
			}
			got[j] = asJSON(map[string]any{"ack": ack, "deliveries": l.Deliveries(), "stores": stores, "members": l.Members("r1")})
		}
		if got[0] != got[1] {
			t.Errorf("step %d (%s %s):\nmemory %s\nredis  %s", i, s.from, s.event, got[0], got[1])
		}
	}
	if n := redisReg.failures(); n != 0 {
		t.Errorf("%d failed calls", n)
	}
}
