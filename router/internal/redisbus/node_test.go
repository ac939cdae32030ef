package redisbus

// The Node side of the tests: one Node process (testdata/node/peer.mjs)
// hosting the real @socket.io/redis-emitter, a socket.io server with the
// real @socket.io/redis-adapter, socket.io-client sockets and notepack.io,
// driven over JSON lines, as internal/jsclient drives its clients. Only the
// real packages can tell whether the bus speaks their format.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"math"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/rtcio/rtcio-router/internal/nodepeer"
	"github.com/rtcio/rtcio-router/internal/redistest"
)

// nodePeer is one running peer.mjs, with the events its socket.io
// clients receive.
type nodePeer struct {
	*nodepeer.Peer
	events chan peerEvent
}

// peerEvent is an event a socket.io-client socket of the peer received.
type peerEvent struct {
	Client string `json:"name"`
	Event  string `json:"event"`
	Args   []any  `json:"args"`
}

// startNodePeer starts peer.mjs on the Redis at url (skipped without node
// or npm unless CI is "true", see nodepeer.Start).
func startNodePeer(t *testing.T, url string) *nodePeer {
	t.Helper()
	p := &nodePeer{events: make(chan peerEvent, 256)}
	p.Peer = nodepeer.Start(t, nodeDir(t), "peer.mjs", []string{url}, func(m map[string]any, line []byte) {
		var ev peerEvent
		if m["type"] == "event" && json.Unmarshal(line, &ev) == nil {
			p.events <- ev
		}
	})
	return p
}

// call sends a command and returns its reply, failing the test on an error
// reply or none within wait.
func (p *nodePeer) call(t testing.TB, cmd map[string]any) map[string]any {
	t.Helper()
	return p.Call(t, wait, cmd)
}

func (p *nodePeer) nextEvent(t testing.TB) peerEvent {
	t.Helper()
	select {
	case ev := <-p.events:
		return ev
	case <-time.After(wait):
		t.Fatalf("no client event within %v", wait)
		return peerEvent{}
	}
}

func (p *nodePeer) expectNoEvent(t testing.TB) {
	t.Helper()
	select {
	case ev := <-p.events:
		t.Fatalf("want no client event, got %+v", ev)
	case <-time.After(quiet):
	}
}

// nodeDir is testdata/node next to this file, whatever the working
// directory.
func nodeDir(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test's source directory")
	}
	return filepath.Join(filepath.Dir(file), "testdata", "node")
}

// untag turns the peer's tagged JSON ({"$bin":...}, {"$date":...}) into the
// values the bus decodes: []byte, and the ISO string of a Date.
func untag(v any) any {
	switch v := v.(type) {
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = untag(x)
		}
		return out
	case map[string]any:
		if b64, ok := v["$bin"].(string); ok && len(v) == 1 {
			b, _ := base64.StdEncoding.DecodeString(b64)
			return b
		}
		if ms, ok := v["$date"].(float64); ok && len(v) == 1 {
			return time.UnixMilli(int64(ms)).UTC().Format("2006-01-02T15:04:05.000Z")
		}
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = untag(x)
		}
		return out
	default:
		return v
	}
}

// jsonish maps the bus's int64 to float64, the only number type JSON from
// the peer has, so a decoded value compares with what Node saw.
func jsonish(v any) any {
	switch v := v.(type) {
	case int64:
		return float64(v)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = jsonish(x)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = jsonish(x)
		}
		return out
	default:
		return v
	}
}

func TestMsgpackMatchesNotepack(t *testing.T) {
	srv := redistest.Start(t)
	peer := startNodePeer(t, srv.URL())

	long := strings.Repeat("é", 40000) // 80000 bytes: str32
	bin := bytes.Repeat([]byte{0xfe, 0x01}, 40000)
	// Values Go and JavaScript both hold, with the type the bus decodes.
	values := []any{
		nil, true, false, "", "x", strings.Repeat("s", 31), strings.Repeat("s", 32), strings.Repeat("s", 255),
		strings.Repeat("s", 256), strings.Repeat("s", 65535), strings.Repeat("s", 65536), "ünïcødé ✓ 🎉", long,
		int64(0), int64(1), int64(127), int64(128), int64(255), int64(256), int64(65535), int64(65536),
		int64(1<<32 - 1), int64(1 << 32), int64(1<<53 - 1), int64(-1), int64(-32), int64(-33), int64(-128),
		int64(-129), int64(-32768), int64(-32769), int64(-1 << 31), int64(-1<<31 - 1), int64(-(1<<53 - 1)),
		1.5, -0.25, 5e-324, 0.1, -123456.789, // any float beyond 2^53 is integral: see below
		[]byte{}, []byte{0, 1, 255}, bytes.Repeat([]byte{7}, 300), bin,
		[]any{}, []any{int64(1), "two", nil, []any{true}}, make([]any, 16), make([]any, 70000),
		map[string]any{}, map[string]any{"a": int64(1), "b": []any{map[string]any{"c": nil}}},
		map[string]any{"": "empty key", "ключ": 2.5, "bin": []byte{1}},
	}
	for i, v := range values {
		var tagged any = v
		if b, ok := v.([]byte); ok {
			tagged = map[string]any{"$bin": base64.StdEncoding.EncodeToString(b)}
		}
		if m, ok := v.(map[string]any); ok && m["bin"] != nil {
			c := map[string]any{}
			for k, x := range m {
				c[k] = x
			}
			c["bin"] = map[string]any{"$bin": "AQ=="}
			tagged = c
		}

		// Node → Go.
		rep := peer.call(t, map[string]any{"cmd": "encode", "value": tagged})
		fromNode, _ := base64.StdEncoding.DecodeString(rep["b64"].(string))
		got, err := newDecoder().decodeValue(string(fromNode))
		if err != nil {
			t.Fatalf("value %d: decode notepack's %x: %v", i, head(fromNode), err)
		}
		if !reflect.DeepEqual(got, v) {
			t.Fatalf("value %d: notepack → Go:\n got  %.200v\n want %.200v", i, got, v)
		}

		// Go → Node.
		var buf bytes.Buffer
		if err := encodeValue(msgpack.NewEncoder(&buf), v, 0); err != nil {
			t.Fatalf("value %d: encode: %v", i, err)
		}
		rep = peer.call(t, map[string]any{"cmd": "decode", "b64": base64.StdEncoding.EncodeToString(buf.Bytes())})
		if back := untag(rep["value"]); !reflect.DeepEqual(back, jsonish(v)) {
			t.Fatalf("value %d: Go → notepack:\n got  %.200v\n want %.200v", i, back, jsonish(v))
		}

		// Same bytes, where the encoding is canonical (maps of one key at
		// most: Go's map order is random).
		if m, ok := v.(map[string]any); (!ok || len(m) <= 1) && !containsMap(v) && !bytes.Equal(buf.Bytes(), fromNode) {
			t.Errorf("value %d: Go encodes %x, notepack %x", i, head(buf.Bytes()), head(fromNode))
		}
	}

	// Go float64s beyond 2^53 travel as msgpack floats, which notepack
	// decodes exactly (its own encoder does not manage that: see below).
	for _, f := range []float64{1e300, -1e300, 1 << 60, 1.5e19, math.MaxFloat64} {
		var buf bytes.Buffer
		if err := encodeValue(msgpack.NewEncoder(&buf), f, 0); err != nil {
			t.Fatal(err)
		}
		rep := peer.call(t, map[string]any{"cmd": "decode", "b64": base64.StdEncoding.EncodeToString(buf.Bytes())})
		if rep["value"] != f {
			t.Errorf("Go %v decoded by notepack as %v", f, rep["value"])
		}
	}

	// JavaScript-only values arrive as what JSON would have made of them.
	for _, c := range []struct {
		js   any
		want any
	}{
		{map[string]any{"$date": 1700000000123.0}, "2023-11-14T22:13:20.123Z"},
		{map[string]any{"$date": 1700000000000.0}, "2023-11-14T22:13:20.000Z"},
		{map[string]any{"$date": -1000.0}, "1969-12-31T23:59:59.000Z"},
		{[]any{map[string]any{"$undefined": true}}, []any{nil}},
		{map[string]any{"a": map[string]any{"$undefined": true}, "b": 1}, map[string]any{"b": int64(1)}},
		{3.0, int64(3)},
		{1e18, int64(1e18)}, // integral beyond 2^53: notepack sends uint64
		{1.5e19, 1.5e19},    // beyond MaxInt64: float64 rather than a wrapped int64
		// notepack.io wraps integral numbers of 2^64 and more into a uint64
		// (1e300 becomes 0): a bug on the Node side that no receiver can
		// undo. Pinned here so that a notepack upgrade that fixes it shows.
		{1e300, int64(0)},
		{-0.0, int64(0)},
	} {
		rep := peer.call(t, map[string]any{"cmd": "encode", "value": c.js})
		b, _ := base64.StdEncoding.DecodeString(rep["b64"].(string))
		got, err := newDecoder().decodeValue(string(b))
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("notepack %v (%x) decoded as %#v, %v; want %#v", c.js, b, got, err, c.want)
		}
	}
}

func containsMap(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		return true
	case []any:
		for _, x := range v {
			if containsMap(x) {
				return true
			}
		}
	}
	return false
}

func head(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

func TestFromNodeEmitter(t *testing.T) {
	srv := redistest.Start(t)
	_, in := startBus(t, newClient(t, srv.Addr), Options{})
	peer := startNodePeer(t, srv.URL())

	emit := func(cmd map[string]any) Broadcast {
		t.Helper()
		cmd["cmd"] = "emit"
		peer.call(t, cmd)
		return in.nextBroadcast(t)
	}
	equalValue(t, `emitter.to("room").emit("ev", {a:1}, [1,2], "x")`,
		emit(map[string]any{"to": []string{"room"}, "event": "ev", "args": []any{map[string]any{"a": 1}, []any{1, 2}, "x"}}),
		Broadcast{Rooms: []string{"room"}, Event: "ev", From: EmitterUID,
			Args: []any{map[string]any{"a": int64(1)}, []any{int64(1), int64(2)}, "x"}})
	equalValue(t, `emitter.to(["a","b"]).except("c").emit("ev2", 1.5, null, true)`,
		emit(map[string]any{"to": []string{"a", "b"}, "except": []string{"c"}, "event": "ev2", "args": []any{1.5, nil, true}}),
		Broadcast{Rooms: []string{"a", "b"}, Except: []string{"c"}, Event: "ev2", From: EmitterUID, Args: []any{1.5, nil, true}})
	equalValue(t, `emitter.except("sid").volatile.emit("ev3")`,
		emit(map[string]any{"except": []string{"sid"}, "volatile": true, "event": "ev3"}),
		Broadcast{Except: []string{"sid"}, Event: "ev3", Volatile: true, From: EmitterUID})
	equalValue(t, `emitter.emit("bin", Buffer, Date)`,
		emit(map[string]any{"event": "bin", "args": []any{map[string]any{"$bin": "AAEC"}, map[string]any{"$date": 0}}}),
		Broadcast{Event: "bin", From: EmitterUID, Args: []any{[]byte{0, 1, 2}, "1970-01-01T00:00:00.000Z"}})

	request := func(cmd map[string]any) Request {
		t.Helper()
		cmd["cmd"] = "request"
		peer.call(t, cmd)
		return in.nextRequest(t)
	}
	equalValue(t, `emitter.in("r").except("x").socketsJoin(["j1","j2"])`,
		request(map[string]any{"op": "socketsJoin", "to": []string{"r"}, "except": []string{"x"}, "rooms": []string{"j1", "j2"}}),
		Request{Kind: RequestJoin, Rooms: []string{"r"}, Except: []string{"x"}, Target: []string{"j1", "j2"}})
	equalValue(t, `emitter.socketsLeave("l")`,
		request(map[string]any{"op": "socketsLeave", "rooms": "l"}),
		Request{Kind: RequestLeave, Target: []string{"l"}})
	equalValue(t, `emitter.in("sid1").disconnectSockets(true)`,
		request(map[string]any{"op": "disconnectSockets", "to": []string{"sid1"}, "close": true}),
		Request{Kind: RequestDisconnect, Rooms: []string{"sid1"}, Close: true})
	equalValue(t, `emitter.disconnectSockets()`,
		request(map[string]any{"op": "disconnectSockets"}),
		Request{Kind: RequestDisconnect})
	equalValue(t, `emitter.serverSideEmit("hello", {x:1}, [2.5])`,
		request(map[string]any{"op": "serverSideEmit", "args": []any{"hello", map[string]any{"x": 1}, []any{2.5}}}),
		Request{Kind: RequestServerSideEmit, From: EmitterUID, Event: "hello", Args: []any{map[string]any{"x": int64(1)}, []any{2.5}}})
	in.expectNothing(t)
}

func TestWithNodeAdapter(t *testing.T) {
	srv := redistest.Start(t)
	bus, in := startBus(t, newClient(t, srv.Addr), Options{})
	peer := startNodePeer(t, srv.URL())
	peer.call(t, map[string]any{"cmd": "server"})

	// Both are subscribed once each counts two servers.
	deadline := time.Now().Add(wait)
	for {
		n, err := bus.ServerCount(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ServerCount = %d, want 2 (the bus and the Node adapter)", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c := peer.call(t, map[string]any{"cmd": "serverCount"})["count"]; c != 2.0 {
		t.Fatalf("Node adapter's serverCount = %v, want 2", c)
	}

	sids := map[string]string{}
	for _, name := range []string{"c1", "c2", "c3"} {
		sids[name] = peer.call(t, map[string]any{"cmd": "connect", "name": name})["sid"].(string)
	}
	for _, name := range []string{"c1", "c2"} {
		peer.call(t, map[string]any{"cmd": "join", "sid": sids[name], "room": "R"})
	}
	peer.call(t, map[string]any{"cmd": "join", "sid": sids["c3"], "room": "S"})

	args := []any{map[string]any{"a": 1, "nested": []any{1.5, "x", nil, true}}, []any{1, 2}, "x", rawJSON(`{"raw":[1,{"b":2}]}`)}
	wantArgs := []any{map[string]any{"a": 1.0, "nested": []any{1.5, "x", nil, true}}, []any{1.0, 2.0}, "x", map[string]any{"raw": []any{1.0, map[string]any{"b": 2.0}}}}

	t.Run("Go publish to a room reaches Node clients in it", func(t *testing.T) {
		publish(t, bus, Broadcast{Rooms: []string{"R"}, Event: "fromGo", Args: args})
		got := map[string]peerEvent{}
		for range 2 {
			ev := peer.nextEvent(t)
			got[ev.Client] = ev
		}
		for _, name := range []string{"c1", "c2"} {
			ev := got[name]
			if ev.Event != "fromGo" || !reflect.DeepEqual(ev.Args, wantArgs) {
				t.Fatalf("%s received %+v, want fromGo %v", name, ev, wantArgs)
			}
		}
		peer.expectNoEvent(t)
	})

	t.Run("except is honoured", func(t *testing.T) {
		publish(t, bus, Broadcast{Rooms: []string{"R", "S"}, Except: []string{sids["c2"]}, Event: "notC2", Args: []any{"y"}})
		got := map[string]bool{}
		for range 2 {
			ev := peer.nextEvent(t)
			if ev.Event != "notC2" || !reflect.DeepEqual(ev.Args, []any{"y"}) {
				t.Fatalf("%s received %+v", ev.Client, ev)
			}
			got[ev.Client] = true
		}
		if !got["c1"] || !got["c3"] {
			t.Fatalf("received by %v, want c1 and c3", got)
		}
		peer.expectNoEvent(t)
	})

	t.Run("a socket id is a room", func(t *testing.T) {
		publish(t, bus, Broadcast{Rooms: []string{sids["c3"]}, Event: "direct", Volatile: true})
		if ev := peer.nextEvent(t); ev.Client != "c3" || ev.Event != "direct" {
			t.Fatalf("got %+v, want direct at c3", ev)
		}
		peer.expectNoEvent(t)
	})

	t.Run("Node io.to(R).emit arrives at the bus", func(t *testing.T) {
		peer.call(t, map[string]any{"cmd": "serverEmit", "to": []string{"R"}, "except": []string{sids["c1"]},
			"event": "fromNode", "args": []any{map[string]any{"k": []any{1, "v"}}, 2.5, map[string]any{"$bin": "AQI="}}})
		b := in.nextBroadcast(t)
		if b.From == "" || b.From == EmitterUID || b.From == bus.UID() {
			t.Fatalf("From = %q, want the Node adapter's uid", b.From)
		}
		b.From = ""
		equalValue(t, "broadcast", b, Broadcast{Rooms: []string{"R"}, Except: []string{sids["c1"]}, Event: "fromNode",
			Args: []any{map[string]any{"k": []any{int64(1), "v"}}, 2.5, []byte{1, 2}}})
		if ev := peer.nextEvent(t); ev.Client != "c2" || ev.Event != "fromNode" {
			t.Fatalf("Node's local delivery: got %+v, want fromNode at c2", ev)
		}
		peer.expectNoEvent(t)
	})

	t.Run("Node socketsJoin arrives as a request", func(t *testing.T) {
		peer.call(t, map[string]any{"cmd": "serverJoinAll", "to": []string{"R"}, "rooms": []string{"T"}})
		r := in.nextRequest(t)
		if r.From == "" {
			t.Fatalf("From is empty, want the Node adapter's uid")
		}
		r.From = ""
		equalValue(t, "request", r, Request{Kind: RequestJoin, Rooms: []string{"R"}, Target: []string{"T"}})
	})

	t.Run("Node broadcast with acks completes without Go acks", func(t *testing.T) {
		start := time.Now()
		rep := peer.call(t, map[string]any{"cmd": "serverEmit", "to": []string{"S"}, "event": "ask", "args": []any{"q"}, "ackTimeout": 3000})
		if rep["err"] != nil {
			t.Fatalf("Node's ack callback got %v (after %v), want the acks of its own clients", rep["err"], time.Since(start))
		}
		equalValue(t, "responses", rep["responses"], []any{"ack-from-c3"})
		b := in.nextBroadcast(t)
		equalValue(t, "delivered broadcast", []any{b.Event, b.Args, b.Rooms}, []any{"ask", []any{"q"}, []string{"S"}})
		if ev := peer.nextEvent(t); ev.Client != "c3" || ev.Event != "ask" {
			t.Fatalf("got %+v, want ask at c3", ev)
		}
	})
	in.expectNothing(t)
}
