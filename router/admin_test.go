package router_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/jsclient"
)

// testAdminHash is a bcrypt hash (cost 4, fast for tests) of "secret".
const testAdminHash = "$2a$04$7u.O0qbFkb6rPTx6jR2YE.eWfcV65fNUXrbd81Xf2apAi/P7AL3d6"

// adminRules is the built-in rtcio.yaml with the admin UI on.
func adminRules(t *testing.T) []byte {
	t.Helper()
	src, err := os.ReadFile("../rtcio.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return append(src, []byte("\nadmin:\n  enabled: true\n  password_hash: \""+testAdminHash+"\"\n")...)
}

// waitAdmin returns the args of the next event called name the UI gets,
// skipping the others (server_stats arrives every 2 s).
func waitAdmin(ui *jsclient.Client, name string) []any {
	return ui.WaitFor(name, 5*time.Second).Args
}

// TestAdminProtocol drives the /admin namespace with the official client
// as the Admin UI does: login, all_sockets, the socket and room events,
// and the join, leave, emit and _disconnect commands on the router's
// sockets.
func TestAdminProtocol(t *testing.T) {
	_, url := startRouter(t, adminRules(t))
	js := jsclient.Start(t)

	for name, auth := range map[string]map[string]any{
		"bad-password": {"username": "admin", "password": "guess"},
		"bad-user":     {"username": "root", "password": "secret"},
		"no-auth":      {},
		"bad-session":  {"sessionId": "0123456789abcdef"},
	} {
		c := js.Connect(name, url+"/admin", map[string]any{"auth": auth})
		if got := c.WaitConnectError(); got.Message != "invalid credentials" {
			t.Errorf("%s: connect_error %+v, want invalid credentials", name, got)
		}
	}

	alice := js.Connect("alice", url, nil)
	aliceID := alice.WaitConnected()
	alice.Emit("join-room", map[string]any{"roomId": "r1", "name": "Alice"})
	awaitJoin(t, js, url, nil, alice, "r1")

	ui := js.Connect("ui", url+"/admin", map[string]any{"auth": map[string]any{"username": "admin", "password": "secret"}})
	ui.WaitConnected()
	session, _ := waitAdmin(ui, "session")[0].(string)
	if len(session) != 16 {
		t.Fatalf("session id %q", session)
	}
	config := waitAdmin(ui, "config")[0].(map[string]any)
	feats := fmt.Sprint(config["supportedFeatures"])
	for _, want := range []string{"JOIN", "LEAVE", "DISCONNECT", "EMIT", "AGGREGATED_EVENTS", "ALL_EVENTS"} {
		if !strings.Contains(feats, want) {
			t.Fatalf("supportedFeatures %v lack %s", feats, want)
		}
	}
	all := waitAdmin(ui, "all_sockets")[0].([]any)
	var seen map[string]any
	for _, s := range all {
		if m := s.(map[string]any); m["id"] == aliceID {
			seen = m
		}
	}
	if seen == nil {
		t.Fatalf("all_sockets %v lack alice %s", all, aliceID)
	}
	if !jsclient.Equal(seen["rooms"], []any{aliceID, "r1"}) || !jsclient.Equal(seen["data"], map[string]any{"name": "Alice"}) ||
		seen["nsp"] != "/" || seen["transport"] == "" || seen["clientId"] == "" {
		t.Fatalf("alice in all_sockets: %v", seen)
	}
	if hs, _ := seen["handshake"].(map[string]any); hs == nil || hs["address"] == "" || hs["headers"] == nil {
		t.Fatalf("alice's handshake: %v", seen["handshake"])
	}
	stats := waitAdmin(ui, "server_stats")[0].(map[string]any)
	if stats["serverId"] == "" || stats["clientsCount"].(float64) < 1 {
		t.Fatalf("server_stats %v", stats)
	}

	bob := js.Connect("bob", url, nil)
	bobID := bob.WaitConnected()
	if got := waitAdmin(ui, "socket_connected")[0].(map[string]any); got["id"] != bobID {
		t.Fatalf("socket_connected %v, want bob %s", got, bobID)
	}
	bob.Emit("join-room", map[string]any{"roomId": "r1", "name": "Bob"})
	if got := waitAdmin(ui, "room_joined"); !jsclient.Equal(got[:3], []any{"/", "r1", bobID}) {
		t.Fatalf("room_joined %v", got)
	}
	alice.WaitFor("user-connected", 0)

	// leave: through the registry, and the room hears peer-left.
	ui.Emit("leave", "/", "r1", bobID)
	if got := waitAdmin(ui, "room_left"); !jsclient.Equal(got[:3], []any{"/", "r1", bobID}) {
		t.Fatalf("room_left %v", got)
	}
	alice.WaitFor("#rtcio:peer-left", 0)

	// join by room filter: every member of r1 (alice) joins r2.
	ui.Emit("join", "/", "r2", "r1")
	if got := waitAdmin(ui, "room_joined"); !jsclient.Equal(got[:3], []any{"/", "r2", aliceID}) {
		t.Fatalf("room_joined %v", got)
	}

	// emit to one socket.
	ui.Emit("emit", "/", aliceID, "hello", map[string]any{"x": 1})
	if got := alice.WaitFor("hello", 0); !jsclient.Equal(got.Args, []any{map[string]any{"x": 1}}) {
		t.Fatalf("hello %v", got.Args)
	}

	// _disconnect: the client sees the server's DISCONNECT.
	ui.Emit("_disconnect", "/", false, bobID)
	if reason := bob.WaitDisconnect(); reason != "io server disconnect" {
		t.Fatalf("bob disconnected for %q", reason)
	}
	if got := waitAdmin(ui, "socket_disconnected"); !jsclient.Equal(got[:3], []any{"/", bobID, "server namespace disconnect"}) {
		t.Fatalf("socket_disconnected %v", got)
	}

	// alice leaves by herself: her rooms, then her socket.
	alice.Close()
	for _, room := range []string{"r1", "r2"} {
		if got := waitAdmin(ui, "room_left"); !jsclient.Equal(got[:3], []any{"/", room, aliceID}) {
			t.Fatalf("room_left %v, want %s", got, room)
		}
	}
	// A client's goodbye may lose the race with its transport's close.
	if got := waitAdmin(ui, "socket_disconnected"); !jsclient.Equal(got[:2], []any{"/", aliceID}) ||
		(got[2] != "client namespace disconnect" && got[2] != "transport close") {
		t.Fatalf("socket_disconnected %v", got)
	}

	// The session id logs a UI in again without the password.
	again := js.Connect("ui-again", url+"/admin", map[string]any{"auth": map[string]any{"sessionId": session}})
	again.WaitConnected()
	waitAdmin(again, "all_sockets")
}
