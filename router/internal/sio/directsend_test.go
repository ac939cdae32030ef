package sio

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/rtcio/rtcio-router/router/internal/sio/siotest"
)

// dsArgs are emit arguments that exercise the JSON writer: nesting, escapes
// the library writes (HTML characters, control characters, non-ASCII),
// numbers, null and a pass-through object.
func dsArgs(i int) []any {
	raw, ok := decodeObjectEvent([]byte(`["x",{"target":"t","data":{"sdp":"v=0\r\n<&>","n":[1,2.5,-3e2]}}]`), []byte(`["x",`))
	if !ok {
		panic("decodeObjectEvent refused the test object")
	}
	return []any{
		map[string]any{"i": float64(i), "s": "é<b>&\u2028\x01\"", "l": []any{true, nil, "x"}, "m": map[string]any{}},
		"plain",
		float64(i) / 3,
		raw,
	}
}

// dsReadEvents reads n socket.io events from c, answering pings.
func dsReadEvents(t *testing.T, c *websocket.Conn, n int) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		m, err := siotest.Read(c, 5*time.Second)
		if err != nil {
			t.Fatalf("after %d of %d events: %v", len(got), n, err)
		}
		if m == "2" {
			_ = c.WriteMessage(websocket.TextMessage, []byte("3"))
			continue
		}
		got = append(got, m)
	}
	return got
}

// TestDirectSendMatchesLibrary: an event sent on the direct path arrives as
// exactly the frame the library writes for the same event, and emits from
// one goroutine keep their order whichever path each takes.
func TestDirectSendMatchesLibrary(t *testing.T) {
	ts := tpStartLibrary(t, Config{})
	c := siotest.WSConnect(t, ts.host, "ds")
	s := ts.socket(t, "ds")
	const n = 60
	before, stats0 := directSends.Load(), ts.tr.Stats()
	go func() {
		for i := range n {
			// Event i's first argument is its place; the rest is the same
			// for both events of a pair, one sent each way.
			args := append([]any{float64(i)}, dsArgs(i/2)...)
			if i%2 == 0 {
				_ = s.Emit("ev", args...) // direct
			} else {
				_ = s.ls.Emit("ev", args...) // the library's path
			}
		}
	}()
	got := dsReadEvents(t, c, n)
	if sent := directSends.Load() - before; sent != n/2 {
		t.Fatalf("direct path taken %d times, want %d", sent, n/2)
	}
	// Both paths count what they send alike: the payload is the frame
	// without the engine's type byte.
	stats1 := ts.tr.Stats()
	bytes := 0
	for _, m := range got {
		bytes += len(m) - 1
	}
	if p, b := stats1.PacketsSent-stats0.PacketsSent, stats1.BytesSent-stats0.BytesSent; p != n || b != uint64(bytes) {
		t.Fatalf("stats counted %d packets, %d bytes; want %d, %d", p, b, n, bytes)
	}
	rest := make([]string, n)
	for i, m := range got {
		prefix := fmt.Sprintf(`42["ev",%d,`, i)
		if !strings.HasPrefix(m, prefix) {
			t.Fatalf("event %d: frame %q, want it to start %s (order lost across the two paths?)", i, m, prefix)
		}
		var frame []any
		if err := json.Unmarshal([]byte(m[2:]), &frame); err != nil {
			t.Fatalf("event %d: invalid JSON %q: %v", i, m, err)
		}
		rest[i] = m[len(prefix):]
		if i%2 == 1 && rest[i] != rest[i-1] {
			t.Fatalf("the direct path and the library wrote the same event differently:\n direct  %s\n library %s", got[i-1], m)
		}
	}
}

// TestDirectSendFallsBack: an acknowledged emit and an emit to a session
// that began on polling take the library's path, and still arrive.
func TestDirectSendFallsBack(t *testing.T) {
	ts := tpStart(t, Config{})
	sid := siotest.PollHandshake(t, ts.base, "", "up")
	if code, body := siotest.PollPost(t, ts.base, sid, "40", false); code != 200 {
		t.Fatalf("CONNECT over polling: %d %s", code, body)
	}
	c, _, err := siotest.DialWS(ts.host, "", sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	siotest.SettleWS(t, c, true)
	if err := c.WriteMessage(websocket.TextMessage, []byte("5")); err != nil {
		t.Fatal(err)
	}
	s := ts.socket(t, "up")
	// The upgrade completes on the server after it reads "5".
	deadline := time.Now().Add(5 * time.Second)
	for s.ls.Conn().Transport().Name() != "websocket" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	before := directSends.Load()
	_ = s.Emit("after-upgrade", "x")
	_ = s.Emit("acked", "y", socket.Ack(func([]any, error) {}))
	for _, want := range []string{`42["after-upgrade","x"]`, `420["acked","y"]`} {
		var m string
		for {
			var err error
			if m, err = siotest.Read(c, 5*time.Second); err != nil {
				t.Fatalf("waiting for %s: %v", want, err)
			}
			// Pings, noops, and the CONNECT answer that waited in the
			// engine's buffer during the upgrade.
			if m != "2" && m != "6" && !strings.HasPrefix(m, "40") {
				break
			}
		}
		if !strings.HasPrefix(m, want[:len(want)-1]) {
			t.Fatalf("got %q, want %s", m, want)
		}
	}
	if d := directSends.Load() - before; d != 0 {
		t.Fatalf("direct path taken %d times for an upgraded session and an ack", d)
	}
}
