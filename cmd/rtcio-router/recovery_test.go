package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/jsclient"
	"github.com/rtcio/rtcio-router/internal/redistest"
)

// balancer is a TCP load balancer in front of nodes, as HAProxy with
// health checks is in production: each new connection goes to the first
// node whose /health answers 200, so a draining or dead node gets none.
// hold refuses connections, keeping a client away while a test sends.
type balancer struct {
	ln    net.Listener
	nodes []*server

	mu   sync.Mutex
	held bool
}

func startBalancer(t *testing.T, nodes ...*server) *balancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{ln: ln, nodes: nodes}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				b.forward(in)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return b
}

func (b *balancer) url() string { return "http://" + b.ln.Addr().String() }

func (b *balancer) hold(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held = on
}

// forward pipes in to the first healthy node until either side closes.
func (b *balancer) forward(in net.Conn) {
	defer in.Close()
	b.mu.Lock()
	held := b.held
	b.mu.Unlock()
	if held {
		return
	}
	hc := http.Client{Timeout: 300 * time.Millisecond}
	for _, n := range b.nodes {
		resp, err := hc.Get(n.url() + "/health")
		if err != nil {
			continue
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			continue
		}
		out, err := net.Dial("tcp", n.addr)
		if err != nil {
			continue
		}
		defer out.Close()
		done := make(chan struct{}, 2)
		go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
		go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
		<-done
		return
	}
}

// TestClusterRecoveryAcrossRestarts runs real processes with
// examples/recovery on one Redis behind a health-checking balancer.
// alice's node is stopped with SIGTERM: it drains and closes her socket
// without a DISCONNECT, and she recovers her session on the next node.
// That node is killed with SIGKILL: she recovers again on the third, with
// the relays sent to her while she was away delivered once each. bob, on
// the third node throughout, never hears her leave, even once the killed
// node is found dead, until she says goodbye.
func TestClusterRecoveryAcrossRestarts(t *testing.T) {
	src, err := os.ReadFile("../../examples/recovery/rtcio.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "rtcio.yaml")
	if err := os.WriteFile(file, src, 0o600); err != nil {
		t.Fatal(err)
	}
	redis := redistest.Start(t)
	node := func() *server {
		return startServer(t, dir, nil, "-c", file, "--addr", "127.0.0.1:0", "--redis", redis.URL())
	}
	n1, n2, n3 := node(), node(), node()
	lb := startBalancer(t, n1, n2, n3)

	js := jsclient.Start(t)
	redial := map[string]any{"transports": []string{"websocket"}, "reconnectionDelay": 100, "reconnectionDelayMax": 200, "randomizationFactor": 0}
	alice := js.Connect("alice", lb.url(), redial).WithT(t)
	bob := js.Connect("bob", n3.url(), map[string]any{"transports": []string{"websocket"}}).WithT(t)
	a, b := alice.WaitConnected(), bob.WaitConnected()
	alice.Emit("join-room", map[string]any{"roomId": "r", "name": "alice"})
	alice.ExpectNothing(300 * time.Millisecond) // her join is in before bob's
	bob.Emit("join-room", map[string]any{"roomId": "r", "name": "bob"})
	bob.Expect(t, "user-connected", map[string]any{"id": a, "name": "alice"})
	alice.Expect(t, "user-connected", map[string]any{"id": b, "name": "bob"})
	alice.Expect(t, "#rtcio:init-offer", map[string]any{"source": b})

	recovered := func(how string) {
		t.Helper()
		start := time.Now()
		if reason := alice.WaitDisconnect(); reason != "transport close" && reason != "transport error" {
			t.Fatalf("%s: alice disconnected with %q; want a transport close (no DISCONNECT)", how, reason)
		}
		bob.Emit("#rtcio:message", map[string]any{"target": a, "data": how})
		bob.ExpectNothing(200 * time.Millisecond)
		lb.hold(false)
		if got := alice.WaitConnected(); got != a || !alice.Recovered() {
			t.Fatalf("%s: alice came back as %q, recovered %v; want %q recovered", how, got, alice.Recovered(), a)
		}
		alice.Expect(t, "#rtcio:message", map[string]any{"source": b, "target": a, "data": how})
		alice.ExpectNothing(300 * time.Millisecond)
		t.Logf("%s: alice recovered on another node after %v", how, time.Since(start).Round(10*time.Millisecond))
		alice.Emit("#rtcio:message", map[string]any{"target": b, "data": "back after " + how})
		bob.Expect(t, "#rtcio:message", map[string]any{"source": a, "target": b, "data": "back after " + how})
	}

	lb.hold(true)
	if err := n1.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	recovered("SIGTERM")

	lb.hold(true)
	if err := n2.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	recovered("SIGKILL")
	// n3 finds n2 dead within its liveness TTL and a watch period.
	bob.ExpectNothing(14 * time.Second)

	alice.Close()
	bob.Expect(t, "#rtcio:peer-left", map[string]any{"id": a})
	bob.Expect(t, "user-disconnected", map[string]any{"id": a})
}
