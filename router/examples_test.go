package router_test

import (
	"os"
	"testing"

	"github.com/rtcio/rtcio-router/internal/jsclient"
)

// TestExampleRoster runs examples/roster as its README describes.
func TestExampleRoster(t *testing.T) {
	src, err := os.ReadFile("../examples/roster/rtcio.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, url := startRouter(t, src)
	js := jsclient.Start(t)
	alice := js.Connect("alice", url, map[string]any{"transports": []string{"websocket"}})
	bob := js.Connect("bob", url, map[string]any{"transports": []string{"websocket"}})
	alice.WaitConnected()
	bob.WaitConnected()
	alice.Emit("join-room", map[string]any{"roomId": "demo", "name": "alice"})
	alice.ExpectNothing(100e6)
	bob.Emit("join-room", map[string]any{"roomId": "demo", "name": "bob"})
	bob.Expect(t, "user-connected", map[string]any{"id": alice.ID(), "name": "alice"})

	got := bob.EmitWithAck("get-roster", map[string]any{"roomId": "demo"})
	want := []any{map[string]any{"roomId": "demo", "peers": []any{
		map[string]any{"id": alice.ID(), "name": "alice"},
		map[string]any{"id": bob.ID(), "name": "bob"},
	}}}
	if !jsclient.Equal(got, want) {
		t.Fatalf("roster: %v, want %v", got, want)
	}
	if got := bob.EmitWithAck("get-roster", map[string]any{"roomId": "elsewhere"}); !jsclient.Equal(got, []any{map[string]any{"error": "not in this room"}}) {
		t.Fatalf("roster of a foreign room: %v", got)
	}

	alice.Expect(t, "user-connected", map[string]any{"id": bob.ID(), "name": "bob"})
	alice.Expect(t, "#rtcio:init-offer", map[string]any{"source": bob.ID()})
	bob.Emit("rename", map[string]any{"name": "  Bobby  "})
	alice.Expect(t, "renamed", map[string]any{"id": bob.ID(), "name": "Bobby"})
	bob.Emit("rename", map[string]any{"name": "   "})
	bob.Expect(t, "rename-error", map[string]any{"code": "bad-name", "message": "name must be 1 to 64 characters"})
	alice.ExpectNothing(100e6)
}
