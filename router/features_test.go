package router_test

import (
	"os"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/jsclient"
)

func featureRules(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/features.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRuleLanguage drives every action and target of the rule language
// through a real server, with the Go client and the JS client together.
func TestRuleLanguage(t *testing.T) {
	_, url := startRouter(t, featureRules(t))
	js := jsclient.Start(t)

	// connect hook, with handshake query and auth.
	g := dialGo(t, url, "websocket", map[string]any{"user": "gopher"})
	g.expect("welcome", map[string]any{"id": g.id(), "tag": "none", "user": "gopher"})
	j := js.Connect("j", url, map[string]any{"query": map[string]any{"tag": "blue"}})
	j.WaitConnected()
	j.Expect(t, "welcome", map[string]any{"id": j.ID(), "tag": "blue", "user": "anon"})

	// validate + reject: the sender alone gets the error event and the ack.
	if got := g.ack("hello", "not a map"); !jsclient.Equal(got, []any{map[string]any{"ok": false}}) {
		t.Fatalf("reject ack: %v", got)
	}
	g.expect("oops", map[string]any{"code": "bad-hello", "got": "string"})
	j.ExpectNothing(100 * time.Millisecond)

	// join with the before-snapshot, let, ack, socket.rooms.
	got := g.ack("hello", map[string]any{"room": "t", "nick": "gopher"})
	want := []any{map[string]any{"ok": true, "before": []any{}, "size": 1, "rooms": []any{"t"}}}
	if !jsclient.Equal(got, want) {
		t.Fatalf("hello ack: %v, want %v", got, want)
	}
	got = j.EmitWithAck("hello", map[string]any{"room": "t", "nick": "js"})
	want = []any{map[string]any{"ok": true, "before": []any{g.id()}, "size": 2, "rooms": []any{"t"}}}
	if !jsclient.Equal(got, want) {
		t.Fatalf("hello ack: %v, want %v", got, want)
	}

	// room store + room_all target (the sender hears it too).
	j.Emit("set-topic", map[string]any{"room": "t", "topic": "go vs js"})
	j.Expect(t, "topic", map[string]any{"topic": "stores.topic[data.room]", "by": "js"})
	g.expect("topic", map[string]any{"topic": "stores.topic[data.room]", "by": "js"})
	if got := g.ack("get-topic", map[string]any{"room": "t"}); !jsclient.Equal(got, []any{"go vs js"}) {
		t.Fatalf("get-topic: %v", got)
	}

	// global store shared by all sockets.
	g.ack("count")
	if got := j.EmitWithAck("count"); !jsclient.Equal(got, []any{2}) {
		t.Fatalf("count: %v", got)
	}

	// socket target and socket data read from another socket.
	j.Emit("dm", map[string]any{"to": g.id(), "text": "hi"})
	g.expect("dm", map[string]any{"from": j.ID(), "nick": "js", "text": "hi"})
	j.Emit("dm", map[string]any{"to": "nobody", "text": "lost"})

	// for_each with where, socket_data and a socket-scoped store.
	j.Emit("members", map[string]any{"room": "t"})
	j.Expect(t, "member", map[string]any{"id": g.id(), "nick": "gopher", "stored": "gopher"})

	// sender_rooms excludes the sender.
	g.emit("shout")
	j.Expect(t, "shout", map[string]any{"from": g.id()})

	// Several rules for one event run in file order.
	j.Emit("order")
	j.Expect(t, "first")
	j.Expect(t, "second")

	// NaN never reaches the wire: it becomes null (and a null field is left out).
	if got := j.EmitWithAck("nan"); !jsclient.Equal(got, []any{map[string]any{"y": 1, "list": []any{1, nil}}}) {
		t.Fatalf("nan: %v", got)
	}

	// A run-time error stops the rule where it happened; nothing crashes.
	j.Emit("crash")
	j.Expect(t, "before-crash")
	j.Emit("order")
	j.Expect(t, "first")
	j.Expect(t, "second")

	// leave reports who remains; when the room empties its room store goes.
	if got := g.ack("bye", map[string]any{"room": "t"}); !jsclient.Equal(got, []any{[]any{j.ID()}}) {
		t.Fatalf("bye: %v", got)
	}
	if got := j.EmitWithAck("bye", map[string]any{"room": "t"}); !jsclient.Equal(got, []any{[]any{}}) {
		t.Fatalf("bye: %v", got)
	}
	if got := j.EmitWithAck("get-topic", map[string]any{"room": "t"}); !jsclient.Equal(got, []any{"none"}) {
		t.Fatalf("topic survived its room: %v", got)
	}

	// disconnect action closes the sender; disconnecting rules run for it.
	j.EmitWithAck("hello", map[string]any{"room": "u", "nick": "js"})
	g.ack("hello", map[string]any{"room": "u", "nick": "gopher"})
	gid := g.id()
	g.emit("kick-me")
	ev := j.WaitFor("gone", 5*time.Second)
	if args := ev.Args[0].(map[string]any); args["id"] != gid || args["reason"] == "" {
		t.Fatalf("gone: %v", ev)
	}
}
