package redisbus

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rtcio/rtcio-router/internal/redistest"
	"github.com/vmihailenco/msgpack/v5"
)

// wait bounds every wait for a message: generous for a loaded CI machine,
// short enough that a lost message fails the test rather than hanging it.
const wait = 5 * time.Second

// quiet is how long a test listens to conclude that nothing arrives.
const quiet = 200 * time.Millisecond

// inbox records what a bus's handlers receive, in order.
type inbox struct {
	broadcasts chan Broadcast
	requests   chan Request
}

func newInbox() *inbox {
	return &inbox{broadcasts: make(chan Broadcast, 256), requests: make(chan Request, 256)}
}

func (in *inbox) options(o Options) Options {
	o.OnBroadcast = func(b Broadcast) { in.broadcasts <- b }
	o.OnRequest = func(r Request) { in.requests <- r }
	return o
}

func (in *inbox) nextBroadcast(t testing.TB) Broadcast {
	t.Helper()
	select {
	case b := <-in.broadcasts:
		return b
	case <-time.After(wait):
		t.Fatalf("no broadcast within %v", wait)
		return Broadcast{}
	}
}

func (in *inbox) nextRequest(t testing.TB) Request {
	t.Helper()
	select {
	case r := <-in.requests:
		return r
	case <-time.After(wait):
		t.Fatalf("no request within %v", wait)
		return Request{}
	}
}

func (in *inbox) expectNothing(t testing.TB) {
	t.Helper()
	select {
	case b := <-in.broadcasts:
		t.Fatalf("want no broadcast, got %+v", b)
	case r := <-in.requests:
		t.Fatalf("want no request, got %+v", r)
	case <-time.After(quiet):
	}
}

func newClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// testLogger writes the bus's logs, debug included, to the test log and to
// a buffer the test can search.
func testLogger(t testing.TB) (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	h := slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bus logs:\n%s", buf.String())
		}
	})
	return slog.New(h), buf
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startBus starts a bus recording into a new inbox, closed when t ends.
func startBus(t testing.TB, client redis.UniversalClient, o Options) (*Bus, *inbox) {
	t.Helper()
	in := newInbox()
	if o.Logger == nil {
		o.Logger, _ = testLogger(t)
	}
	b, err := New(client, in.options(o))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return b, in
}

func publish(t testing.TB, b *Bus, br Broadcast) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := b.Publish(ctx, br); err != nil {
		t.Fatalf("publish %+v: %v", br, err)
	}
}

func equalValue(t testing.TB, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %#v\n want %#v", what, got, want)
	}
}

// rawJSON is how the router forwards some arguments: JSON text it has not
// decoded.
type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

func TestGoToGo(t *testing.T) {
	srv := redistest.Start(t)
	a, aIn := startBus(t, newClient(t, srv.Addr), Options{})
	b, bIn := startBus(t, newClient(t, srv.Addr), Options{})

	t.Run("one room", func(t *testing.T) {
		publish(t, a, Broadcast{Rooms: []string{"r1"}, Event: "ev", Args: []any{
			map[string]any{"a": 1}, []any{1, 2.5, "x"}, "s", true, nil,
		}})
		got := bIn.nextBroadcast(t)
		equalValue(t, "broadcast", got, Broadcast{
			Rooms: []string{"r1"}, Event: "ev", From: a.UID(),
			Args: []any{map[string]any{"a": int64(1)}, []any{int64(1), 2.5, "x"}, "s", true, nil},
		})
	})

	t.Run("several rooms with except", func(t *testing.T) {
		publish(t, a, Broadcast{Rooms: []string{"r1", "r2", "r1"}, Except: []string{"sid-1"}, Event: "ev", Volatile: true, Tag: "t"})
		got := bIn.nextBroadcast(t)
		equalValue(t, "broadcast", got, Broadcast{
			Rooms: []string{"r1", "r2"}, Except: []string{"sid-1"}, Event: "ev", Volatile: true, Tag: "t", From: a.UID(),
		})
	})

	t.Run("everyone, from the other side", func(t *testing.T) {
		publish(t, b, Broadcast{Event: "hello", Args: []any{"from b"}})
		got := aIn.nextBroadcast(t)
		equalValue(t, "broadcast", got, Broadcast{Event: "hello", Args: []any{"from b"}, From: b.UID()})
	})

	t.Run("own broadcasts are not echoed", func(t *testing.T) {
		publish(t, a, Broadcast{Event: "mine"})
		bIn.nextBroadcast(t) // a's message has reached Redis's subscribers
		publish(t, b, Broadcast{Event: "theirs"})
		if got := aIn.nextBroadcast(t); got.Event != "theirs" {
			t.Fatalf("a received %q first, want b's %q (its own must be skipped)", got.Event, "theirs")
		}
		bIn.expectNothing(t)
		aIn.expectNothing(t)
	})

	t.Run("server count", func(t *testing.T) {
		n, err := a.ServerCount(context.Background())
		if err != nil || n != 2 {
			t.Fatalf("ServerCount = %d, %v; want 2", n, err)
		}
	})
}

func TestPublishArguments(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := startBus(t, newClient(t, srv.Addr), Options{})
	_, bIn := startBus(t, newClient(t, srv.Addr), Options{})

	type point struct {
		X int    `json:"x"`
		Y string `json:"y"`
	}
	args := []any{
		rawJSON(`{"n":1,"f":1.5,"big":12345678901234,"list":[true,null,"s"]}`),
		json.RawMessage(`[1,2]`),
		[]string{"a", "b"},
		point{X: 3, Y: "z"},
		int8(-5), uint16(600), uint64(1 << 40), float32(0.5), 3.0, -0.0, 1e300,
		math.NaN(),
		[]byte{0, 1, 2},
		json.Number("7"),
		map[string]any{},
		[]any{},
		"",
	}
	publish(t, a, Broadcast{Event: "args", Args: args})
	got := bIn.nextBroadcast(t)
	if len(got.Args) != len(args) {
		t.Fatalf("got %d args, want %d: %#v", len(got.Args), len(args), got.Args)
	}
	if f, ok := got.Args[11].(float64); !ok || !math.IsNaN(f) {
		t.Fatalf("NaN arrived as %#v", got.Args[11])
	}
	got.Args[11] = "NaN checked"
	equalValue(t, "args", got.Args, []any{
		map[string]any{"n": int64(1), "f": 1.5, "big": int64(12345678901234), "list": []any{true, nil, "s"}},
		[]any{int64(1), int64(2)},
		[]any{"a", "b"},
		map[string]any{"x": int64(3), "y": "z"},
		int64(-5), int64(600), int64(1 << 40), 0.5, int64(3), int64(0), 1e300,
		"NaN checked",
		[]byte{0, 1, 2},
		int64(7),
		map[string]any{},
		[]any{},
		"",
	})

	for _, bad := range []Broadcast{
		{Event: ""},
		{Event: "disconnect"},
		{Event: "ev", Args: []any{make(chan int)}},
		{Event: "ev", Args: []any{rawJSON(`{"a":`)}},
	} {
		if err := a.Publish(context.Background(), bad); err == nil {
			t.Errorf("Publish(%+v) succeeded, want an error", bad)
		}
	}
	cyclic := []any{nil}
	cyclic[0] = cyclic
	if err := a.Publish(context.Background(), Broadcast{Event: "ev", Args: cyclic}); err == nil {
		t.Errorf("Publish of a slice that contains itself succeeded")
	}
	bIn.expectNothing(t)
}

func TestMalformedMessagesAreDropped(t *testing.T) {
	srv := redistest.Start(t)
	client := newClient(t, srv.Addr)
	log, logs := testLogger(t)
	_, in := startBus(t, client, Options{Logger: log})

	mp := func(v any) string {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	packet := map[string]any{"type": 2, "data": []any{"ev"}, "nsp": "/"}
	opts := map[string]any{"rooms": []any{}, "except": []any{}, "flags": map[string]any{}}
	bad := []struct{ channel, payload string }{
		{"socket.io#/#", ""},
		{"socket.io#/#", "not msgpack at all"},
		{"socket.io#/#", "\xdd\xff\xff\xff\xff"}, // an array claiming 4 billion elements
		{"socket.io#/#", "\x93\xc4\x01x"},        // truncated
		{"socket.io#/#", mp("a string")},
		{"socket.io#/#", mp([]any{"uid", packet})},
		{"socket.io#/#", mp([]any{42, packet, opts})},
		{"socket.io#/#", mp([]any{"uid", "packet", opts})},
		{"socket.io#/#", mp([]any{"uid", map[string]any{"type": 2, "data": []any{}, "nsp": "/"}, opts})},
		{"socket.io#/#", mp([]any{"uid", map[string]any{"type": 2, "data": []any{7}, "nsp": "/"}, opts})},
		{"socket.io#/#", mp([]any{"uid", map[string]any{"type": 3, "data": []any{"ev"}, "nsp": "/"}, opts})},
		{"socket.io#/#", mp([]any{"uid", map[string]any{"type": 2, "data": []any{"ev"}, "nsp": "/chat"}, opts})},
		{"socket.io#/#", mp([]any{"uid", packet, map[string]any{"rooms": []any{1.5}}})},
		{"socket.io#/#", mp([]any{"uid", packet, map[string]any{"rooms": "r"}})},
		{"socket.io#/#", mp([]any{"uid", packet, map[string]any{"flags": 1}})},
		{"socket.io#/#", mp([]any{"uid", packet, opts}) + "\x00"}, // trailing byte
		{"socket.io#/#room#", mp([]any{"uid", map[any]any{1: 2}, opts})},
		{"socket.io#/#", "\x93\xa3uid\x81\xa1k\xd4\x05\x00"}, // unknown extension
		{"socket.io-request#/#", "{"},
		{"socket.io-request#/#", "[1,2]"},
		{"socket.io-request#/#", `{"type":"2"}`},
		{"socket.io-request#/#", `{"type":2,"rooms":["x"]}`},
		{"socket.io-request#/#", `{"type":2,"opts":{"rooms":[1]},"rooms":["x"]}`},
		{"socket.io-request#/#", `{"type":4,"opts":{},"close":"yes"}`},
		{"socket.io-request#/#", `{"type":6,"data":[]}`},
		{"socket.io-request#/#", `{"type":6,"data":[1,2]}`},
		{"socket.io-request#/#", `{"type":99}`},
		{"socket.io-request#/#", `{"type":7,"requestId":"x","packet":{}}`},
		{"socket.io-request#/#", "\x81\xa4type"},
	}
	ctx := context.Background()
	for _, m := range bad {
		if err := client.Publish(ctx, m.channel, m.payload).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// One subscriber connection receives in publish order: if this arrives
	// first, every message before it was dropped.
	good := mp([]any{"uid", packet, opts})
	if err := client.Publish(ctx, "socket.io#/#", good).Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.Publish(ctx, "socket.io-request#/#", `{"type":6,"data":["ping"]}`).Err(); err != nil {
		t.Fatal(err)
	}
	equalValue(t, "first broadcast after the bad ones", in.nextBroadcast(t), Broadcast{Event: "ev", From: "uid"})
	equalValue(t, "first request after the bad ones", in.nextRequest(t), Request{Kind: RequestServerSideEmit, Event: "ping"})
	in.expectNothing(t)
	if n := strings.Count(logs.String(), "dropped"); n != len(bad) {
		t.Errorf("logged %d drops, want %d:\n%s", n, len(bad), logs.String())
	}
}

// FuzzDecodeBroadcast checks that no input makes the decoders panic or hang;
// its seeds run with every go test.
func FuzzDecodeBroadcast(f *testing.F) {
	for _, s := range []string{
		"", "\x93\xa3uid\x83\xa4type\x02\xa4data\x91\xa2ev\xa3nsp\xa1/\x80",
		"\xdd\xff\xff\xff\xff", "\xdf\xff\xff\xff\xff", "\xc6\xff\xff\xff\xff", "\xdb\xff\xff\xff\xff",
		"\xc9\xff\xff\xff\xff\xff", `{"type":2,"opts":{"rooms":["a"]},"rooms":["b"]}`,
	} {
		f.Add(s)
	}
	d := newDecoder()
	f.Fuzz(func(t *testing.T, payload string) {
		_, _ = decodeBroadcast(d, payload, "me", "/")
		_, _ = decodeRequest(d, payload)
	})
}

// TestHugeLengthClaimsAllocateNothing guards against a message that claims
// a length it does not hold: the msgpack library alone would allocate the
// claim (bin) or grow the reused decoder's buffer by 1 MB per message
// (strings), which a hostile publisher could repeat until memory runs out.
func TestHugeLengthClaimsAllocateNothing(t *testing.T) {
	vd := newDecoder()
	claims := []string{"\xdb", "\xc6", "\xc9", "\xdd", "\xdf"} // str32, bin32, ext32, array32, map32
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 100 {
		for _, c := range claims {
			huge := c + "\x7f\xff\xff\xff" + "xxxxxxxx"
			if _, err := decodeRequest(vd, huge); err == nil {
				t.Fatalf("decoded %q", huge)
			}
			if _, err := decodeBroadcast(vd, "\x93"+huge, "me", "/"); err == nil {
				t.Fatalf("decoded %q", huge)
			}
			if _, err := decodeBroadcast(vd, "\x93\xa1u"+huge, "me", "/"); err == nil {
				t.Fatalf("decoded %q", huge)
			}
		}
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("1500 messages claiming 2 GB each allocated %d bytes", n)
	}
}

func TestDeeplyNestedMessageIsDropped(t *testing.T) {
	deep := "\x93\xa3uid\x83\xa4type\x02\xa4data\x92\xa2ev" + strings.Repeat("\x91", 100000) + "\xc0" + "\xa3nsp\xa1/\x80"
	_, err := decodeBroadcast(newDecoder(), deep, "me", "/")
	if err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("decode of 100000 nested arrays: %v, want a depth error", err)
	}
}

func TestTimestampDecodesAsJavaScriptDate(t *testing.T) {
	tm := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	for _, enc := range []func(*msgpack.Encoder) error{
		func(e *msgpack.Encoder) error { return e.EncodeTime(tm) },
		func(e *msgpack.Encoder) error { return e.EncodeTime(tm.Truncate(time.Second)) },
	} {
		var buf bytes.Buffer
		if err := enc(msgpack.NewEncoder(&buf)); err != nil {
			t.Fatal(err)
		}
		v, err := newDecoder().decodeValue(buf.String())
		if err != nil {
			t.Fatal(err)
		}
		if v != "2024-05-06T07:08:09.123Z" && v != "2024-05-06T07:08:09.000Z" {
			t.Fatalf("timestamp decoded as %#v", v)
		}
	}
}

func TestRequestsFromGoPublishers(t *testing.T) {
	srv := redistest.Start(t)
	client := newClient(t, srv.Addr)
	bus, in := startBus(t, client, Options{})
	ctx := context.Background()
	for _, m := range []string{
		`{"uid":"` + bus.UID() + `","type":6,"data":["own"]}`, // own: skipped
		`{"type":2,"opts":{"rooms":["a"],"except":["b"]},"rooms":["c","d"]}`,
		`{"uid":"node1","type":3,"opts":{"rooms":[],"except":[]},"rooms":["c"]}`,
		`{"type":4,"opts":{"rooms":["a"]},"close":true}`,
		`{"uid":"node1","requestId":"abc","type":6,"data":["hi",{"n":1.5}]}`,
		`{"uid":"node1","requestId":"abc","type":5,"opts":{"rooms":[],"except":[]}}`, // fetchSockets: not answered
	} {
		if err := client.Publish(ctx, "socket.io-request#/#", m).Err(); err != nil {
			t.Fatal(err)
		}
	}
	equalValue(t, "join", in.nextRequest(t), Request{Kind: RequestJoin, Rooms: []string{"a"}, Except: []string{"b"}, Target: []string{"c", "d"}})
	equalValue(t, "leave", in.nextRequest(t), Request{Kind: RequestLeave, From: "node1", Target: []string{"c"}})
	equalValue(t, "disconnect", in.nextRequest(t), Request{Kind: RequestDisconnect, Rooms: []string{"a"}, Close: true})
	equalValue(t, "serverSideEmit", in.nextRequest(t), Request{Kind: RequestServerSideEmit, From: "node1", Event: "hi", Args: []any{map[string]any{"n": 1.5}}, WantsAck: true})
	in.expectNothing(t)
}

func TestFetchRequestsAnswered(t *testing.T) {
	srv := redistest.Start(t)
	client := newClient(t, srv.Addr)
	type call struct{ rooms, except []string }
	calls := make(chan call, 8)
	sockets := []Socket{
		{ID: "s1", Rooms: []string{"s1", "r"}, Data: map[string]any{"name": "a"}, Handshake: map[string]any{"auth": map[string]any{}}},
		{ID: "s2", Rooms: []string{"s2", "r", "q"}},
	}
	startBus(t, client, Options{OnFetch: func(rooms, except []string) []Socket {
		calls <- call{rooms, except}
		out := slices.Clone(sockets)
		if slices.Contains(rooms, "nan") {
			out[1].Data = math.NaN() // not JSON
		}
		return out
	}})
	ctx := context.Background()
	sub := client.Subscribe(ctx, "socket.io-response#/#")
	t.Cleanup(func() { _ = sub.Close() })
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		req        string
		rooms, exc []string
		reply      string
	}{
		{`{"uid":"n","requestId":"f1","type":5,"opts":{"rooms":["r"],"except":["x"]}}`, []string{"r"}, []string{"x"},
			`{"requestId":"f1","sockets":[{"id":"s1","rooms":["s1","r"],"data":{"name":"a"},"handshake":{"auth":{}}},{"id":"s2","rooms":["s2","r","q"],"data":null,"handshake":null}]}`},
		// Data that is not JSON: answered without the data rather than
		// not at all.
		{`{"uid":"n","requestId":"f4","type":5,"opts":{"rooms":["nan"]}}`, []string{"nan"}, nil,
			`{"requestId":"f4","sockets":[{"id":"s1","rooms":["s1","r"],"data":null,"handshake":{"auth":{}}},{"id":"s2","rooms":["s2","r","q"],"data":null,"handshake":null}]}`},
		{`{"uid":"n","requestId":"f2","type":0,"rooms":["r"]}`, []string{"r"}, nil, `{"requestId":"f2","sockets":["s1","s2"]}`},
		{`{"uid":"n","requestId":"f3","type":1}`, nil, nil, `{"requestId":"f3","rooms":["s1","r","s2","q"]}`},
	} {
		if err := client.Publish(ctx, "socket.io-request#/#", c.req).Err(); err != nil {
			t.Fatal(err)
		}
		m, err := sub.ReceiveTimeout(ctx, wait)
		if err != nil {
			t.Fatalf("%s: no reply: %v", c.req, err)
		}
		if got := m.(*redis.Message).Payload; got != c.reply {
			t.Errorf("%s:\n got  %s\n want %s", c.req, got, c.reply)
		}
		equalValue(t, "OnFetch selection", <-calls, call{c.rooms, c.exc})
	}
}

func TestOptions(t *testing.T) {
	srv := redistest.Start(t)
	client := newClient(t, srv.Addr)
	if _, err := New(client, Options{UID: EmitterUID}); err == nil {
		t.Error("New accepted the emitter's UID")
	}
	if _, err := New(client, Options{Namespace: "chat"}); err == nil {
		t.Error("New accepted a namespace without a leading slash")
	}
	if _, err := New(nil, Options{}); err == nil {
		t.Error("New accepted a nil client")
	}

	// A prefix with glob characters must match only itself, and other
	// namespaces' broadcasts must not arrive.
	chat, chatIn := startBus(t, client, Options{Prefix: "a*b", Namespace: "/chat"})
	_, chat2In := startBus(t, client, Options{Prefix: "a*b", Namespace: "/chat"})
	root, rootIn := startBus(t, client, Options{Prefix: "a*b"})
	star, starIn := startBus(t, client, Options{Prefix: "axxb", Namespace: "/chat"})
	publish(t, star, Broadcast{Event: "star"}) // "a*b#/chat#*" unescaped would match it
	publish(t, root, Broadcast{Event: "root"})
	publish(t, chat, Broadcast{Event: "chat", Rooms: []string{"r"}})
	equalValue(t, "chat's broadcast at chat2", chat2In.nextBroadcast(t).Event, "chat")
	chat2In.expectNothing(t)
	chatIn.expectNothing(t)
	rootIn.expectNothing(t)
	starIn.expectNothing(t)
	if n, err := chat.ServerCount(context.Background()); err != nil || n != 2 {
		t.Errorf("ServerCount of /chat = %d, %v; want 2", n, err)
	}

	if err := chat.Close(); err != nil {
		t.Fatal(err)
	}
	if err := chat.Publish(context.Background(), Broadcast{Event: "late"}); err != ErrClosed {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
	if err := chat.Start(context.Background()); err != ErrClosed {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
}

func TestResubscribesAfterRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	log, logs := testLogger(t)
	client := newClient(t, srv.Addr)
	bus, in := startBus(t, client, Options{Logger: log})
	publisher, err := New(newClient(t, srv.Addr), Options{})
	if err != nil {
		t.Fatal(err)
	}

	srv.Kill()
	srv.Restart(t)

	// Resubscribed once the new server counts the bus again.
	deadline := time.Now().Add(wait)
	for {
		n, err := bus.ServerCount(context.Background())
		if err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bus not resubscribed within %v (count %d, %v)", wait, n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	publish(t, publisher, Broadcast{Event: "after restart", Rooms: []string{"r"}})
	equalValue(t, "event", in.nextBroadcast(t).Event, "after restart")
	for _, want := range []string{"redis subscription lost", "redis subscription restored"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
}

func TestCloseStopsHandlers(t *testing.T) {
	srv := redistest.Start(t)
	client := newClient(t, srv.Addr)
	var mu sync.Mutex
	closed := false
	calledAfterClose := false
	bus, err := New(client, Options{OnBroadcast: func(Broadcast) {
		mu.Lock()
		defer mu.Unlock()
		calledAfterClose = calledAfterClose || closed
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	pub, _ := startBus(t, newClient(t, srv.Addr), Options{})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = pub.Publish(context.Background(), Broadcast{Event: fmt.Sprint("e", i)})
		}
	}()
	time.Sleep(50 * time.Millisecond)
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	closed = true
	mu.Unlock()
	time.Sleep(50 * time.Millisecond)
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	if calledAfterClose {
		t.Fatal("OnBroadcast ran after Close returned")
	}
	if err := bus.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestStartFailsWithoutRedis(t *testing.T) {
	srv := redistest.Start(t)
	client := newClient(t, srv.Addr)
	srv.Kill()
	bus, err := New(client, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := bus.Start(ctx); err == nil {
		t.Fatal("Start succeeded with Redis down")
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}
