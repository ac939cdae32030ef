package main

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rtcio/rtcio-router/internal/jsclient"
	"github.com/rtcio/rtcio-router/internal/redistest"
)

// clusterNode starts a node of the cluster on redisURL (given with
// --redis) listening on a port of its own on 127.0.0.1.
func clusterNode(t *testing.T, env []string, redisURL string) *server {
	t.Helper()
	args := []string{"--addr", "127.0.0.1:0"}
	if redisURL != "" {
		args = append(args, "--redis", redisURL)
	}
	return startServer(t, t.TempDir(), env, args...)
}

// waitHealth polls a node's /health until it answers code with redis as
// want, or fails after within.
func waitHealth(t *testing.T, s *server, code int, redis string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got, body := health(t, s.url())
		if got == code && body["redis"] == redis {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("health of %s: %d %v, want %d with redis %s", s.addr, got, body, code, redis)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// expectLeft reads c's events until #rtcio:peer-left for id, then wants
// user-disconnected for it, and returns how long the first took.
func expectLeft(t *testing.T, c *jsclient.Client, id string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	ev, ok := c.TryNext(within)
	if want := []any{map[string]any{"id": id}}; !ok || ev.Name != "#rtcio:peer-left" || !jsclient.Equal(ev.Args, want) {
		t.Fatalf("want #rtcio:peer-left %s within %v, got %v (%v)", id, within, ev, ok)
	}
	took := time.Since(start)
	c.Expect(t, "user-disconnected", map[string]any{"id": id})
	return took
}

// TestClusterFlags: --redis wins over REDIS_URL, REDIS_URL is enough on its
// own; a malformed URL is a usage error and an unreachable Redis a failure
// to start, each with a message.
func TestClusterFlags(t *testing.T) {
	redis := redistest.Start(t)
	byEnv := clusterNode(t, []string{"REDIS_URL=" + redis.URL()}, "")
	byFlag := clusterNode(t, []string{"REDIS_URL=redis://127.0.0.1:1/0"}, redis.URL())
	for _, n := range []*server{byEnv, byFlag} {
		if code, body := health(t, n.url()); code != 200 || body["redis"] != "up" || body["node"] == "" {
			t.Fatalf("health of %s: %d %v", n.addr, code, body)
		}
	}
	if _, stderr, code := runCmd(t, t.TempDir(), "--addr", "127.0.0.1:0", "--redis", "http://x:1"); code != exitUsage || !strings.Contains(stderr, "scheme") {
		t.Fatalf("bad URL: code %d, stderr %q", code, stderr)
	}
	if _, stderr, code := runCmd(t, t.TempDir(), "--addr", "127.0.0.1:0", "--redis", "redis://127.0.0.1:1/0"); code != exitFailure || !strings.Contains(stderr, "cluster") {
		t.Fatalf("unreachable Redis: code %d, stderr %q", code, stderr)
	}
}

// TestClusterNodesComeAndGo runs real processes on one Redis: peers on
// two nodes meet in a room; a node stopped with SIGTERM has its sockets'
// peers told at once; one killed with SIGKILL, within the liveness window;
// Redis restarted empty is refilled by the nodes (rooms and sockets), and
// Redis down makes /health answer 503 until it is back.
func TestClusterNodesComeAndGo(t *testing.T) {
	redis := redistest.Start(t)
	n1 := clusterNode(t, nil, redis.URL())
	js := jsclient.Start(t)
	ws := map[string]any{"transports": []string{"websocket"}, "reconnection": false}
	a := js.Connect("a", n1.url(), ws).WithT(t)
	a.WaitConnected()
	a.Emit("join-room", map[string]any{"roomId": "r", "name": "a"})
	// a's join is handled before b's: a witness hears a first.
	w := js.Connect("w", n1.url(), ws).WithT(t)
	w.WaitConnected()
	w.Emit("join-room", map[string]any{"roomId": "r", "name": "w"})
	w.Expect(t, "user-connected", map[string]any{"id": a.ID(), "name": "a"})
	a.Expect(t, "user-connected", map[string]any{"id": w.ID(), "name": "w"})
	a.Expect(t, "#rtcio:init-offer", map[string]any{"source": w.ID()})
	wid := w.ID()
	w.Close()
	expectLeft(t, a, wid, 5*time.Second)

	join := func(name string, n *server) *jsclient.Client {
		c := js.Connect(name, n.url(), ws).WithT(t)
		c.WaitConnected()
		c.Emit("join-room", map[string]any{"roomId": "r", "name": name})
		c.Expect(t, "user-connected", map[string]any{"id": a.ID(), "name": "a"})
		a.Expect(t, "user-connected", map[string]any{"id": c.ID(), "name": name})
		a.Expect(t, "#rtcio:init-offer", map[string]any{"source": c.ID()})
		return c
	}

	// SIGTERM: the node cleans its sockets up before it goes.
	n2 := clusterNode(t, nil, redis.URL())
	bid := join("b", n2).ID()
	if err := n2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	took := expectLeft(t, a, bid, 5*time.Second)
	t.Logf("SIGTERM: peers told after %v", took.Round(10*time.Millisecond))

	// SIGKILL: another node finds it dead and cleans up for it, and
	// nothing of it is left in Redis.
	n3 := clusterNode(t, nil, redis.URL())
	_, h3 := health(t, n3.url())
	dead, _ := h3["node"].(string)
	cid := join("c", n3).ID()
	if err := n3.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	took = expectLeft(t, a, cid, 20*time.Second)
	t.Logf("SIGKILL: peers told after %v", took.Round(100*time.Millisecond))
	rdb := goredis.NewClient(&goredis.Options{Addr: redis.Addr})
	defer rdb.Close()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		keys, err := rdb.Keys(context.Background(), "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for _, k := range keys {
			if strings.Contains(k, dead) || strings.Contains(k, cid) {
				left = append(left, k)
			}
		}
		members, _ := rdb.SMembers(context.Background(), "{rtcio}:nodes").Result()
		for _, m := range members {
			if m == dead {
				left = append(left, "nodes member "+m)
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis still holds the dead node's traces: %v", left)
		}
	}

	// Redis restarted empty: n1 writes a back with its room.
	redis.Restart(t)
	waitHealth(t, n1, 200, "up", 5*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	var d *jsclient.Client
	for {
		d = js.Connect("d", n1.url(), ws).WithT(t)
		d.WaitConnected()
		d.Emit("join-room", map[string]any{"roomId": "r", "name": "d"})
		ev, ok := d.TryNext(time.Second)
		if ok && ev.Name == "user-connected" && jsclient.Equal(ev.Args, []any{map[string]any{"id": a.ID(), "name": "a"}}) {
			a.Expect(t, "user-connected", map[string]any{"id": d.ID(), "name": "d"})
			a.Expect(t, "#rtcio:init-offer", map[string]any{"source": d.ID()})
			break
		}
		// Not rebuilt yet (the check runs every 2 s): d found an empty
		// room. Whatever a heard of it is not the point here.
		d.Close()
		if time.Now().After(deadline) {
			t.Fatalf("after the Redis restart a joiner never heard of a (last: %v %v)", ev, ok)
		}
		for {
			if _, ok := a.TryNext(500 * time.Millisecond); !ok {
				break
			}
		}
	}

	// Redis down: 503; a relay between two sockets of one node needs no
	// Redis and still goes through; then Redis is back.
	redis.Kill()
	waitHealth(t, n1, 503, "down", 10*time.Second)
	a.Emit("#rtcio:message", map[string]any{"target": d.ID(), "data": "while down"})
	d.Expect(t, "#rtcio:message", map[string]any{"source": a.ID(), "target": d.ID(), "data": "while down"})
	redis.Restart(t)
	waitHealth(t, n1, 200, "up", 10*time.Second)
}
