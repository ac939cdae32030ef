package router_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/jsclient"
)

// TestDrainAndClose: Drain turns /health to 503 and refuses new
// handshakes while established sockets keep working; Close then ends them
// with a transport close, so clients reconnect elsewhere, after their
// disconnect rules ran.
func TestDrainAndClose(t *testing.T) {
	rt, url := startRouter(t, builtinRules(t))
	js := jsclient.Start(t)
	a := js.Connect("a", url, map[string]any{"reconnection": false})
	b := js.Connect("b", url, map[string]any{"reconnection": false})
	for _, c := range []*jsclient.Client{a, b} {
		c.WaitConnected()
		// A client holds its events back while it upgrades: without this,
		// b's join could overtake a's.
		c.WaitTransport("websocket")
	}
	a.Emit("join-room", map[string]any{"roomId": "r", "name": "a"})
	awaitJoin(t, js, url, map[string]any{"reconnection": false}, a, "r")
	b.Emit("join-room", map[string]any{"roomId": "r", "name": "b"})
	b.Expect(t, "user-connected", map[string]any{"id": a.ID(), "name": "a"})

	rt.Drain()
	resp, err := http.Get(url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("health while draining: %d", resp.StatusCode)
	}
	late := js.Connect("late", url, map[string]any{"reconnection": false})
	late.WaitConnectError()

	// Established sessions still work while draining.
	a.Emit("media-state", map[string]any{"roomId": "r", "mic": true, "cam": true})
	b.Expect(t, "media-state", map[string]any{"roomId": "r", "mic": true, "cam": true})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*jsclient.Client{a, b} {
		if reason := c.WaitDisconnect(); reason != "transport close" {
			t.Errorf("%s: disconnect reason %q, want transport close", c.Name(), reason)
		}
	}
}
