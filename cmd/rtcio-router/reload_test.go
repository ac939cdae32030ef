package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/jsclient"
)

// versioned is the built-in rules plus, for version v, an event `ver`
// acking v and one new event `new-v`. broken adds an error at a known
// place instead.
func versioned(t *testing.T, base []byte, v int, broken bool) string {
	t.Helper()
	s := string(base) + fmt.Sprintf(`
  - event: ver
    do:
      - ack: %d
  - event: new-%d
    do:
      - ack: "new"
`, v, v)
	if broken {
		s += "  - event: typo\n    do:\n      - ack: dta.x\n"
	}
	return s
}

// TestReloadUnderLoad: a real server with 50 clients relaying envelopes
// continuously while the file is rewritten and SIGHUP sent 20 times,
// alternating good and broken versions. No socket disconnects, no
// envelope is lost or reordered, every good reload applies to the next
// event of an already connected socket (a new event works without
// reconnecting), and every broken one is refused with its position and
// changes nothing.
func TestReloadUnderLoad(t *testing.T) {
	root := repoRoot(t)
	base, err := os.ReadFile(filepath.Join(root, "rtcio.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "rtcio.yaml")
	write := func(s string) {
		// Write then rename, as editors and config managers do, so the
		// server never reads a half-written file.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(versioned(t, base, 0, false))
	srv := startServer(t, dir, nil, "-c", path, "--addr", "127.0.0.1:0")
	js := jsclient.Start(t)

	const pairs = 25
	type pair struct{ a, b *jsclient.Client }
	ps := make([]pair, pairs)
	for i := range ps {
		opts := map[string]any{"transports": []string{"websocket"}, "reconnection": false}
		ps[i] = pair{js.Connect(fmt.Sprintf("a%d", i), srv.url(), opts), js.Connect(fmt.Sprintf("b%d", i), srv.url(), opts)}
	}
	ids := map[*jsclient.Client]string{}
	for _, p := range ps {
		ids[p.a], ids[p.b] = p.a.WaitConnected(), p.b.WaitConnected()
	}
	// Every a joins first (its join must be handled before its b's, or the
	// presence events go the other way round), then every b. A socket's
	// events are handled in order, so the ack of its ver proves its join.
	for i, p := range ps {
		p.a.Emit("join-room", map[string]any{"roomId": fmt.Sprintf("room%d", i), "name": "a"})
	}
	for _, p := range ps {
		if got := p.a.EmitWithAck("ver"); !jsclient.Equal(got, []any{0}) {
			t.Fatalf("ver = %v", got)
		}
	}
	for i, p := range ps {
		room := fmt.Sprintf("room%d", i)
		p.b.Emit("join-room", map[string]any{"roomId": room, "name": "b"})
		p.b.Expect(t, "user-connected", map[string]any{"id": ids[p.a], "name": "a"})
		p.a.Expect(t, "user-connected", map[string]any{"id": ids[p.b], "name": "b"})
		p.a.Expect(t, "#rtcio:init-offer", map[string]any{"source": ids[p.b]})
	}

	// Relay traffic, from every a to its b, for the whole reload sequence.
	var stop atomic.Bool
	var wg sync.WaitGroup
	// Stops the senders when a check fails too (before the JS driver goes).
	t.Cleanup(func() { stop.Store(true); wg.Wait() })
	sent := make([]int, pairs)
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; !stop.Load(); seq++ {
				p.a.Emit("#rtcio:message", map[string]any{"target": ids[p.b], "data": map[string]any{"seq": seq}})
				sent[i] = seq + 1
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}

	// State that every reload, good or refused, must leave alone: a member
	// of its own room with a media state, which a late joiner is
	// backfilled with.
	keeper := js.Connect("keeper", srv.url(), map[string]any{"transports": []string{"websocket"}, "reconnection": false})
	keeperID := keeper.WaitConnected()
	keeper.Emit("join-room", map[string]any{"roomId": "kept", "name": "keeper"})
	keeper.Emit("media-state", map[string]any{"roomId": "kept", "mic": false, "cam": true})
	keeper.EmitWithAck("ver") // both handled
	lateJoiner := func(v int) {
		t.Helper()
		c := js.Connect(fmt.Sprint("late", v), srv.url(), map[string]any{"transports": []string{"websocket"}, "reconnection": false}).WithT(t)
		c.WaitConnected()
		c.Emit("join-room", map[string]any{"roomId": "kept", "name": "late"})
		c.Expect(t, "user-connected", map[string]any{"id": keeperID, "name": "keeper"})
		c.Expect(t, "media-state", map[string]any{"id": keeperID, "roomId": "kept", "mic": false, "cam": true})
		c.Close()
	}

	probe := ps[0].a // an already connected socket
	for v := 1; v <= 20; v++ {
		broken := v%2 == 0
		write(versioned(t, base, v, broken))
		_ = srv.cmd.Process.Signal(syscall.SIGHUP)
		if broken {
			m := srv.waitLog(t, "reload rejected; keeping the previous rules")
			if msg, _ := m["err"].(string); !strings.Contains(msg, `rtcio.yaml:`) || !strings.Contains(msg, `unknown name "dta"`) {
				t.Fatalf("version %d: rejection without position: %v", v, m["err"])
			}
			// Nothing changed: the previous version answers, its new event too.
			if got := probe.EmitWithAck("ver"); !jsclient.Equal(got, []any{v - 1}) {
				t.Fatalf("after broken version %d: ver = %v, want %d", v, got, v-1)
			}
			if _, err := probe.EmitWithAckTimeout(200*time.Millisecond, fmt.Sprintf("new-%d", v)); err == nil {
				t.Fatalf("broken version %d partly applied", v)
			}
			code, body := health(t, srv.url())
			if msg, _ := body["last_reload_error"].(string); code != 200 || body["last_reload_ok"] != false ||
				!strings.Contains(msg, `rtcio.yaml:`) || !strings.Contains(msg, `unknown name "dta"`) {
				t.Fatalf("health after broken version %d: %d %v", v, code, body)
			}
			lateJoiner(v)
			continue
		}
		srv.waitLog(t, "rules reloaded")
		if code, body := health(t, srv.url()); code != 200 || body["last_reload_ok"] != true || body["last_reload_error"] != nil {
			t.Fatalf("health after version %d: %d %v", v, code, body)
		}
		lateJoiner(v)
		if got := probe.EmitWithAck("ver"); !jsclient.Equal(got, []any{v}) {
			t.Fatalf("after version %d: ver = %v", v, got)
		}
		if got := probe.EmitWithAck(fmt.Sprintf("new-%d", v)); !jsclient.Equal(got, []any{"new"}) {
			t.Fatalf("new event of version %d: %v", v, got)
		}
	}
	stop.Store(true)
	wg.Wait()

	for i, p := range ps {
		for seq := 0; seq < sent[i]; seq++ {
			ev := p.b.WaitFor("#rtcio:message", 10*time.Second)
			got := ev.Args[0].(map[string]any)["data"].(map[string]any)["seq"]
			if got != float64(seq) || ev.Args[0].(map[string]any)["source"] != ids[p.a] {
				t.Fatalf("pair %d: envelope %d: got %v", i, seq, ev)
			}
		}
		for _, c := range []*jsclient.Client{p.a, p.b} {
			if !c.Connected() || c.ID() != ids[c] {
				t.Fatalf("%s lost its session during reloads", c.Name())
			}
		}
	}
	if code, body := health(t, srv.url()); code != 200 || body["reloads_ok"] != float64(10) || body["reloads_failed"] != float64(10) {
		t.Fatalf("health: %d %v", code, body)
	}
}

// TestWatchReloads: with --watch, saving the file reloads it.
func TestWatchReloads(t *testing.T) {
	root := repoRoot(t)
	base, err := os.ReadFile(filepath.Join(root, "rtcio.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "rtcio.yaml")
	if err := os.WriteFile(path, []byte(versioned(t, base, 1, false)), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, dir, nil, "-c", path, "--addr", "127.0.0.1:0", "--watch")
	js := jsclient.Start(t)
	c := js.Connect("c", srv.url(), nil)
	c.WaitConnected()
	if got := c.EmitWithAck("ver"); !jsclient.Equal(got, []any{1}) {
		t.Fatalf("ver = %v", got)
	}
	if err := os.WriteFile(path, []byte(versioned(t, base, 2, false)), 0o644); err != nil {
		t.Fatal(err)
	}
	srv.waitLog(t, "rules reloaded")
	if got := c.EmitWithAck("ver"); !jsclient.Equal(got, []any{2}) {
		t.Fatalf("ver after save = %v", got)
	}
}
