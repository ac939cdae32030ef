package router_test

// Interoperability of a cluster of rtcio-router nodes with the socket.io
// Node ecosystem on the same Redis, with the real npm packages: a backend
// using @socket.io/redis-emitter, and a socket.io 4 server using
// @socket.io/redis-adapter with socket.io-client sockets of its own. The
// Node side is router/internal/redisbus/testdata/node/peer.mjs (the bus's
// own interop driver), driven over JSON lines.

import (
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/jsclient"
	"github.com/rtcio/rtcio-router/internal/nodepeer"
)

// nodeBackend is one running peer.mjs: an emitter, and on request a
// socket.io server with the Redis adapter and clients of that server.
type nodeBackend struct {
	*nodepeer.Peer

	mu      sync.Mutex
	events  map[string][]jsclient.Event // by Node client name
	changed chan struct{}               // closed and replaced on every event
}

// startNodeBackend starts peer.mjs on the Redis at url (skipped without
// node or npm unless CI is "true", see nodepeer.Start).
func startNodeBackend(t *testing.T, url string) *nodeBackend {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("internal", "redisbus", "testdata", "node"))
	if err != nil {
		t.Fatal(err)
	}
	b := &nodeBackend{events: map[string][]jsclient.Event{}, changed: make(chan struct{})}
	b.Peer = nodepeer.Start(t, dir, "peer.mjs", []string{url}, b.received)
	return b
}

// received records an event a Node client got.
func (b *nodeBackend) received(m map[string]any, _ []byte) {
	if m["type"] != "event" {
		return
	}
	name, _ := m["name"].(string)
	ev, _ := m["event"].(string)
	args, _ := m["args"].([]any)
	if args == nil {
		args = []any{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events[name] = append(b.events[name], jsclient.Event{Name: ev, Args: args})
	close(b.changed)
	b.changed = make(chan struct{})
}

// do sends a command with the default timeout.
func (b *nodeBackend) do(t testing.TB, cmd map[string]any) map[string]any {
	t.Helper()
	return b.Call(t, jsclient.DefaultTimeout, cmd)
}

// untilMark returns the events Node client name received before the
// event "mark" with argument n, and consumes them and the mark.
func (b *nodeBackend) untilMark(t testing.TB, name string, n int) []jsclient.Event {
	t.Helper()
	deadline := time.After(jsclient.DefaultTimeout)
	for {
		b.mu.Lock()
		evs := b.events[name]
		for i, ev := range evs {
			if ev.Name == "mark" && jsclient.Equal(ev.Args, []any{n}) {
				b.events[name] = evs[i+1:]
				b.mu.Unlock()
				return evs[:i]
			}
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-b.Done():
			t.Fatalf("node backend exited while %s waited for mark %d: %s", name, n, b.Stderr())
		case <-deadline:
			t.Fatalf("Node client %s: no mark %d within %v; received %v", name, n, jsclient.DefaultTimeout, evs)
		}
	}
}

// marker delimits the steps of an interop test: after a step, the
// emitter sends "mark" n to every socket of the cluster. Every publisher's
// messages reach each subscriber in the order Redis received them, and
// each node writes them to a socket in that order, so what a socket
// receives before the mark is exactly what the step sent it, with no
// quiet period to wait out.
type marker struct {
	t       *testing.T
	backend *nodeBackend
	n       int
}

// mark sends the next mark and checks that each router client received
// exactly want[client] before it (nothing when absent) and each Node
// client exactly nodeWant[name].
func (m *marker) mark(step string, clients []*jsclient.Client, want map[*jsclient.Client][]jsclient.Event, nodeClients []string, nodeWant map[string][]jsclient.Event) {
	m.t.Helper()
	m.n++
	m.backend.do(m.t, map[string]any{"cmd": "emit", "event": "mark", "args": []any{m.n}})
	for _, c := range clients {
		got := untilMark(m.t, c, m.n)
		if !sameEvents(got, want[c]) {
			m.t.Errorf("%s: router client %s received %v, want %v", step, c.Name(), got, want[c])
		}
	}
	for _, name := range nodeClients {
		got := m.backend.untilMark(m.t, name, m.n)
		if !sameEvents(got, nodeWant[name]) {
			m.t.Errorf("%s: Node client %s received %v, want %v", step, name, got, nodeWant[name])
		}
	}
}

// untilMark returns the events router client c received before mark n.
func untilMark(t testing.TB, c *jsclient.Client, n int) []jsclient.Event {
	t.Helper()
	var got []jsclient.Event
	for {
		ev, ok := c.TryNext(jsclient.DefaultTimeout)
		if !ok {
			t.Fatalf("router client %s: no mark %d within %v; received %v", c.Name(), n, jsclient.DefaultTimeout, got)
		}
		if ev.Name == "mark" && jsclient.Equal(ev.Args, []any{n}) {
			return got
		}
		got = append(got, ev)
	}
}

func sameEvents(got, want []jsclient.Event) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].Name != want[i].Name || !jsclient.Equal(got[i].Args, want[i].Args) {
			return false
		}
	}
	return true
}

func ev(name string, args ...any) jsclient.Event {
	if args == nil {
		args = []any{}
	}
	return jsclient.Event{Name: name, Args: args}
}

func evs(e ...jsclient.Event) []jsclient.Event { return e }

// joinFirst has c join room as its first member and waits until the join
// is visible across the cluster.
func joinFirst(t *testing.T, p *jsclient.Process, url string, c *jsclient.Client, room string) {
	t.Helper()
	ws := map[string]any{"transports": []string{"websocket"}}
	c.Emit("join-room", map[string]any{"roomId": room, "name": c.Name()})
	awaitJoin(t, p, url, ws, c, room)
}

// TestClusterInteropEmitter: a Node backend's @socket.io/redis-emitter on
// the cluster's Redis reaches the router's clients on both nodes by
// application room, by socket id, everyone, with except; its
// disconnectSockets hangs them up with the full disconnect cleanup; its
// socketsJoin and socketsLeave are ignored (rooms belong to the rules),
// as is serverSideEmit.
func TestClusterInteropEmitter(t *testing.T) {
	redis, _, urls := startCluster(t, 2, builtinRules(t))
	backend := startNodeBackend(t, redis.URL())
	p := jsclient.Start(t)
	ws := map[string]any{"transports": []string{"websocket"}}
	connect := func(name string, node int) *jsclient.Client {
		c := p.Connect(name, urls[node], ws).WithT(t)
		c.WaitConnected()
		return c
	}
	a, b, c, d := connect("a", 0), connect("b", 1), connect("c", 0), connect("d", 1)
	all := []*jsclient.Client{a, b, c, d}
	joinFirst(t, p, urls[1], a, "r1")
	b.Emit("join-room", map[string]any{"roomId": "r1", "name": "b"})
	b.Expect(t, "user-connected", map[string]any{"id": a.ID(), "name": "a"})
	a.Expect(t, "user-connected", map[string]any{"id": b.ID(), "name": "b"})
	a.Expect(t, "#rtcio:init-offer", map[string]any{"source": b.ID()})
	joinFirst(t, p, urls[1], c, "r2")

	m := &marker{t: t, backend: backend}
	emit := func(to, except []string, event string, args ...any) {
		t.Helper()
		if args == nil {
			args = []any{}
		}
		backend.do(t, map[string]any{"cmd": "emit", "to": to, "except": except, "event": event, "args": args})
	}
	request := func(op string, to, except, rooms []string, close bool) {
		t.Helper()
		backend.do(t, map[string]any{"cmd": "request", "op": op, "to": to, "except": except, "rooms": rooms, "close": close})
	}

	payload := map[string]any{"text": "hello", "n": 1.5, "nested": map[string]any{"list": []any{1, "x", nil, true}}}
	emit([]string{"r1"}, nil, "announce", payload)
	m.mark(`emitter.to("r1").emit`, all, map[*jsclient.Client][]jsclient.Event{
		a: evs(ev("announce", payload)), b: evs(ev("announce", payload)),
	}, nil, nil)

	emit([]string{b.ID()}, nil, "direct", "to-b")
	emit([]string{c.ID()}, nil, "direct", "to-c")
	m.mark(`emitter.to(<socket id>).emit`, all, map[*jsclient.Client][]jsclient.Event{
		b: evs(ev("direct", "to-b")), c: evs(ev("direct", "to-c")),
	}, nil, nil)

	emit(nil, nil, "everyone", 1, "two")
	want := map[*jsclient.Client][]jsclient.Event{}
	for _, x := range all {
		want[x] = evs(ev("everyone", 1, "two"))
	}
	m.mark(`emitter.emit`, all, want, nil, nil)

	emit([]string{"r1"}, []string{a.ID()}, "ex1")
	emit(nil, []string{"r2"}, "ex2")
	emit([]string{"r1", "r2"}, []string{"r1"}, "ex3")
	emit([]string{"r1", d.ID()}, []string{b.ID(), c.ID()}, "ex4")
	m.mark(`emitter.except(...)`, all, map[*jsclient.Client][]jsclient.Event{
		a: evs(ev("ex2"), ev("ex4")),
		b: evs(ev("ex1"), ev("ex2")),
		c: evs(ev("ex3")),
		d: evs(ev("ex2"), ev("ex4")),
	}, nil, nil)

	// An application room's internal name is no socket id: a room named
	// like it is another room, for reaching and for except alike.
	emit([]string{"r:r1"}, nil, "prefixed")
	emit([]string{"r1"}, []string{"r:r1"}, "exceptPrefixed")
	m.mark(`emitter.to("r:r1") / except("r:r1")`, all, map[*jsclient.Client][]jsclient.Event{
		a: evs(ev("exceptPrefixed")), b: evs(ev("exceptPrefixed")),
	}, nil, nil)

	// Values: a Date arrives as its JSON string; a Buffer cannot be sent
	// to the router's clients (JSON only), so such a broadcast is dropped.
	emit([]string{"r1"}, nil, "bin", map[string]any{"$bin": "AQI="}, "x")
	emit([]string{"r1"}, nil, "nestedBin", map[string]any{"k": []any{map[string]any{"$bin": "AQI="}}})
	emit([]string{"r1"}, nil, "date", map[string]any{"$date": 0}, map[string]any{"gone": map[string]any{"$undefined": true}})
	date := evs(ev("date", "1970-01-01T00:00:00.000Z", map[string]any{}))
	m.mark(`emitter: Buffer and Date arguments`, all, map[*jsclient.Client][]jsclient.Event{a: date, b: date}, nil, nil)

	// Rooms belong to the rules: socketsJoin and socketsLeave change
	// nothing, and serverSideEmit has no listener on a router node.
	request("socketsJoin", []string{d.ID()}, nil, []string{"r1"}, false)
	request("socketsJoin", nil, nil, []string{"r3"}, false)
	request("socketsLeave", []string{"r1"}, nil, []string{"r1"}, false)
	backend.do(t, map[string]any{"cmd": "request", "op": "serverSideEmit", "args": []any{"hello-servers", 1}})
	emit([]string{"r1"}, nil, "after-join")
	emit([]string{"r3"}, nil, "to-r3")
	m.mark(`emitter.socketsJoin/socketsLeave (ignored)`, all, map[*jsclient.Client][]jsclient.Event{
		a: evs(ev("after-join")), b: evs(ev("after-join")),
	}, nil, nil)

	// disconnectSockets: by socket id, by room, everyone.
	request("disconnectSockets", []string{c.ID()}, nil, nil, false)
	if r := c.WaitDisconnect(); r != "io server disconnect" {
		t.Errorf("c disconnected with %q, want io server disconnect", r)
	}
	m.mark(`emitter.in(<socket id>).disconnectSockets`, []*jsclient.Client{a, b, d}, nil, nil, nil)

	request("disconnectSockets", []string{"r1"}, nil, nil, false)
	for _, x := range []*jsclient.Client{a, b} {
		if r := x.WaitDisconnect(); r != "io server disconnect" {
			t.Errorf("%s disconnected with %q, want io server disconnect", x.Name(), r)
		}
	}
	m.mark(`emitter.in("r1").disconnectSockets`, []*jsclient.Client{d}, nil, nil, nil)
	// The cleanup ran: r1 is empty for a newcomer, on either node.
	f := connect("f", 0)
	joinFirst(t, p, urls[1], f, "r1")

	request("disconnectSockets", nil, []string{f.ID()}, nil, true)
	if r := d.WaitDisconnect(); r != "io server disconnect" {
		t.Errorf("d disconnected with %q, want io server disconnect", r)
	}
	m.mark(`emitter.except(f).disconnectSockets(true)`, []*jsclient.Client{f}, nil, nil, nil)
	request("disconnectSockets", nil, nil, nil, true)
	if r := f.WaitDisconnect(); r != "io server disconnect" {
		t.Errorf("f disconnected with %q, want io server disconnect", r)
	}
	for _, url := range urls {
		waitSockets(t, url, 0)
	}
}

// socketIDs returns the sorted ids of fetchSockets' answer.
func socketIDs(v any) []any {
	list, _ := v.([]any)
	var ids []string
	for _, s := range list {
		if m, ok := s.(map[string]any); ok {
			id, _ := m["id"].(string)
			ids = append(ids, id)
		}
	}
	return sortedIDs(ids...)
}

func sortedIDs(ids ...string) []any {
	slices.Sort(ids)
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

// TestClusterInteropNodeServer: a socket.io 4 server with
// @socket.io/redis-adapter shares the Redis with two router nodes. Its room
// emits reach the router's clients in that application room, and the
// rules' room emits reach its own clients that joined the room there. Its
// requests are observed as they are: broadcasts with acks complete with its
// own clients' acks (the router nodes report zero), fetchSockets and
// allRooms are answered by every router node, serverSideEmitWithAck is
// not (it times out), disconnectSockets is carried out.
func TestClusterInteropNodeServer(t *testing.T) {
	redis, _, urls := startCluster(t, 2, builtinRules(t))
	backend := startNodeBackend(t, redis.URL())
	const requestsTimeout = 1500 // ms: the adapter's wait for other nodes' answers
	backend.do(t, map[string]any{"cmd": "server", "requestsTimeout": requestsTimeout})
	deadline := time.Now().Add(jsclient.DefaultTimeout)
	for {
		n := backend.do(t, map[string]any{"cmd": "serverCount"})["count"]
		if n == 3.0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Node adapter counts %v servers, want 3 (two router nodes and itself)", n)
		}
		time.Sleep(20 * time.Millisecond)
	}

	p := jsclient.Start(t)
	ws := map[string]any{"transports": []string{"websocket"}}
	connect := func(name string, node int) *jsclient.Client {
		c := p.Connect(name, urls[node], ws).WithT(t)
		c.WaitConnected()
		return c
	}
	a, b, d := connect("a", 0), connect("b", 1), connect("d", 0)
	joinFirst(t, p, urls[1], a, "r1")
	b.Emit("join-room", map[string]any{"roomId": "r1", "name": "b"})
	b.Expect(t, "user-connected", map[string]any{"id": a.ID(), "name": "a"})
	a.Expect(t, "user-connected", map[string]any{"id": b.ID(), "name": "b"})
	a.Expect(t, "#rtcio:init-offer", map[string]any{"source": b.ID()})

	// Node clients of the Node server: n1 in r1, n2 in r2 (server-side joins).
	n1 := backend.do(t, map[string]any{"cmd": "connect", "name": "n1"})["sid"].(string)
	n2 := backend.do(t, map[string]any{"cmd": "connect", "name": "n2"})["sid"].(string)
	backend.do(t, map[string]any{"cmd": "join", "sid": n1, "room": "r1"})
	backend.do(t, map[string]any{"cmd": "join", "sid": n2, "room": "r2"})
	nodeNames := []string{"n1", "n2"}

	m := &marker{t: t, backend: backend}
	all := []*jsclient.Client{a, b, d}
	serverEmit := func(to, except []string, event string, args ...any) {
		t.Helper()
		if args == nil {
			args = []any{}
		}
		backend.do(t, map[string]any{"cmd": "serverEmit", "to": to, "except": except, "event": event, "args": args})
	}

	payload := map[string]any{"from": "node", "list": []any{1, 2.5, "x", nil, false}}
	serverEmit([]string{"r1"}, nil, "fromNode", payload)
	m.mark(`io.to("r1").emit`, all, map[*jsclient.Client][]jsclient.Event{
		a: evs(ev("fromNode", payload)), b: evs(ev("fromNode", payload)),
	}, nodeNames, map[string][]jsclient.Event{"n1": evs(ev("fromNode", payload))})

	serverEmit([]string{a.ID()}, nil, "toA")
	serverEmit(nil, []string{"r1"}, "notR1")
	serverEmit([]string{"r1", "r2"}, []string{b.ID(), n2}, "ex")
	m.mark(`io.to(<router socket id>) / io.except("r1") / except ids`, all, map[*jsclient.Client][]jsclient.Event{
		a: evs(ev("toA"), ev("ex")), d: evs(ev("notR1")),
	}, nodeNames, map[string][]jsclient.Event{"n1": evs(ev("ex")), "n2": evs(ev("notR1"))})

	// A Buffer: the Node server's own client gets it; the router's
	// clients cannot (JSON only), so their nodes drop it.
	bin := map[string]any{"$bin": "AQI="}
	serverEmit([]string{"r1"}, nil, "bin", bin)
	m.mark(`io.to("r1").emit(Buffer)`, all, nil, nodeNames, map[string][]jsclient.Event{"n1": evs(ev("bin", bin))})

	// The rules' room emits reach the Node server's clients in the room.
	state := map[string]any{"roomId": "r1", "mic": true, "cam": false}
	a.Emit("media-state", state)
	b.Expect(t, "media-state", state)
	m.mark(`media-state from a router client`, all, nil,
		nodeNames, map[string][]jsclient.Event{"n1": evs(ev("media-state", state))})

	// A router joiner's backfill lists the router's members only (n1 is
	// in the Node server's room, not in the registry), but its room emits,
	// init-offer included, reach n1 too.
	e := connect("e", 1)
	e.Emit("join-room", map[string]any{"roomId": "r1", "name": "e"})
	e.Expect(t, "user-connected", map[string]any{"id": a.ID(), "name": "a"})
	e.Expect(t, "media-state", map[string]any{"id": a.ID(), "roomId": "r1", "mic": true, "cam": false})
	e.Expect(t, "user-connected", map[string]any{"id": b.ID(), "name": "b"})
	joined := evs(ev("user-connected", map[string]any{"id": e.ID(), "name": "e"}), ev("#rtcio:init-offer", map[string]any{"source": e.ID()}))
	for _, x := range []*jsclient.Client{a, b} {
		x.Expect(t, "user-connected", map[string]any{"id": e.ID(), "name": "e"})
		x.Expect(t, "#rtcio:init-offer", map[string]any{"source": e.ID()})
	}
	all = append(all, e)
	m.mark(`join-room by a router client`, all, nil, nodeNames, map[string][]jsclient.Event{"n1": joined})

	// A relay to a Node server's socket is refused: it is not in the
	// registry, so it shares no room with the sender as far as the router
	// knows.
	a.Emit("#rtcio:message", map[string]any{"target": n1, "data": "offer"})
	m.mark(`#rtcio:message to a Node server's socket`, all, nil, nodeNames, nil)

	// A broadcast with acknowledgements: the router nodes deliver it
	// without an ack id and report zero acks, so Node's callback completes
	// at once with its own clients' acks.
	start := time.Now()
	rep := backend.Call(t, 10*time.Second, map[string]any{"cmd": "serverEmit", "to": []string{"r1"}, "event": "ask", "args": []any{"q"}, "ackTimeout": 3000})
	took := time.Since(start)
	if rep["err"] != nil || !jsclient.Equal(rep["responses"], []any{"ack-from-n1"}) {
		t.Errorf("io.to(r1).timeout(3000).emit(ask, cb): err %v, responses %v after %v; want no error and n1's ack", rep["err"], rep["responses"], took)
	}
	t.Logf("broadcast with ack to r1 completed after %v with %v", took.Round(time.Millisecond), rep["responses"])
	for _, x := range []*jsclient.Client{a, b, e} {
		got := x.Next(jsclient.DefaultTimeout)
		if got.Name != "ask" || !jsclient.Equal(got.Args, []any{"q"}) || got.AckID != 0 {
			t.Errorf("%s received %v (ack id %d), want ask [q] without an ack id", x.Name(), got, got.AckID)
		}
	}
	m.mark(`io.to("r1").timeout().emit(..., ack)`, all, nil, nodeNames, map[string][]jsclient.Event{"n1": evs(ev("ask", "q"))})

	// fetchSockets and allRooms: every router node answers for its own
	// sockets (id, rooms with the id first, socket data, handshake query
	// and auth), so the Node server's requests complete, well before
	// requestsTimeout.
	start = time.Now()
	rep = backend.Call(t, 10*time.Second, map[string]any{"cmd": "fetchSockets", "to": []string{"r1"}})
	took = time.Since(start)
	if rep["err"] != nil || took >= requestsTimeout*time.Millisecond {
		t.Fatalf("io.in(r1).fetchSockets(): err %v after %v, want the sockets of every node", rep["err"], took)
	}
	t.Logf("io.in(r1).fetchSockets() answered after %v (node-side wait %vms)", took.Round(time.Millisecond), rep["ms"])
	got := map[string]any{}
	for _, s := range rep["sockets"].([]any) {
		s := s.(map[string]any)
		got[s["id"].(string)] = s
	}
	hs := map[string]any{"query": map[string]any{"EIO": "4", "transport": "websocket"}, "auth": map[string]any{}}
	for _, x := range []*jsclient.Client{a, b, e} {
		want := map[string]any{"id": x.ID(), "rooms": []any{x.ID(), "r1"}, "data": map[string]any{"name": x.Name()}, "handshake": hs}
		if !jsclient.Equal(got[x.ID()], want) {
			t.Errorf("fetchSockets: %s is %v, want %v", x.Name(), got[x.ID()], want)
		}
	}
	if s, _ := got[n1].(map[string]any); s == nil || !jsclient.Equal(s["rooms"], []any{n1, "r1"}) {
		t.Errorf("fetchSockets: the Node server's own n1 is %v", got[n1])
	}
	if len(got) != 4 {
		t.Errorf("fetchSockets(r1) returned %d sockets, want a, b, e and n1: %v", len(got), rep["sockets"])
	}
	rep = backend.Call(t, 10*time.Second, map[string]any{"cmd": "fetchSockets", "except": []string{"r1"}})
	if ids := socketIDs(rep["sockets"]); rep["err"] != nil || !jsclient.Equal(ids, sortedIDs(d.ID(), n2)) {
		t.Errorf("io.except(r1).fetchSockets(): err %v, ids %v; want d and n2", rep["err"], ids)
	}
	rep = backend.Call(t, 10*time.Second, map[string]any{"cmd": "allRooms"})
	rooms, _ := rep["rooms"].([]any)
	for _, want := range []string{"r1", "r2", a.ID(), b.ID(), d.ID(), e.ID(), n1, n2} {
		if !slices.Contains(rooms, any(want)) {
			t.Errorf("allRooms: err %v, rooms %v; want %s among them", rep["err"], rooms, want)
		}
	}

	// serverSideEmitWithAck: a router node has no server-side listeners
	// and does not answer, so the Node server's callback times out.
	rep = backend.Call(t, 10*time.Second, map[string]any{"cmd": "serverSideEmitWithAck", "args": []any{"ping"}})
	t.Logf("io.serverSideEmitWithAck(ping): err %v after %vms", rep["err"], rep["ms"])
	if rep["err"] != "timeout reached: only 0 responses received out of 2" {
		t.Errorf("serverSideEmitWithAck: err %v, responses %v; want the adapter's timeout (router nodes do not answer)", rep["err"], rep["responses"])
	}

	// disconnectSockets from the Node server hangs up the router's socket,
	// with the cleanup: the room hears peer-left and user-disconnected, the
	// Node client in it too.
	bID := b.ID()
	backend.do(t, map[string]any{"cmd": "serverDisconnect", "to": []string{bID}})
	if r := b.WaitDisconnect(); r != "io server disconnect" {
		t.Errorf("b disconnected with %q, want io server disconnect", r)
	}
	left := evs(ev("#rtcio:peer-left", map[string]any{"id": bID}), ev("user-disconnected", map[string]any{"id": bID}))
	for _, x := range []*jsclient.Client{a, e} {
		x.Expect(t, "#rtcio:peer-left", map[string]any{"id": bID})
		x.Expect(t, "user-disconnected", map[string]any{"id": bID})
	}
	all = slices.DeleteFunc(all, func(x *jsclient.Client) bool { return x == b })
	m.mark(`io.in(<router socket id>).disconnectSockets`, all, nil, nodeNames, map[string][]jsclient.Event{"n1": left})
}
