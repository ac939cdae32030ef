package router_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/jsclient"
	"github.com/rtcio/rtcio-router/router"
)

// netCut is a TCP proxy in front of the server that can cut every
// connection through it, as a network drop does (neither side says
// goodbye), and keep refusing new ones until restored, so a client stays
// away as long as a test needs.
type netCut struct {
	t      testing.TB
	ln     net.Listener
	target string

	mu      sync.Mutex
	conns   map[net.Conn]bool // true for the server side of a connection
	refused bool
	// stranded leaves the server side of cut connections open, as when a
	// client's network changes: the server learns of it only when its
	// heartbeat times out.
	stranded bool
	wg       sync.WaitGroup
}

func newNetCut(t testing.TB, serverURL string) *netCut {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &netCut{t: t, ln: ln, target: strings.TrimPrefix(serverURL, "http://"), conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

// URL is the proxy's address for clients.
func (p *netCut) URL() string { return "http://" + p.ln.Addr().String() }

func (p *netCut) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refused, target := p.refused, p.target
		p.mu.Unlock()
		if refused {
			_ = in.Close()
			continue
		}
		out, err := net.Dial("tcp", target)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		p.conns[in], p.conns[out] = false, true
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

func (p *netCut) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range []net.Conn{dst, src} {
		if upstream, ok := p.conns[c]; ok && !(upstream && p.stranded) {
			_ = c.Close()
			delete(p.conns, c)
		}
	}
}

// drop cuts every connection and refuses new ones until restore.
func (p *netCut) drop() {
	p.mu.Lock()
	p.refused = true
	p.mu.Unlock()
	p.cut()
}

// retarget sends the connections made from now on to another server, as
// a load balancer does when the first one is gone.
func (p *netCut) retarget(serverURL string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = strings.TrimPrefix(serverURL, "http://")
}

func (p *netCut) restore() {
	p.mu.Lock()
	p.refused = false
	p.mu.Unlock()
}

// strand cuts the client side of every connection only, leaving the
// server holding a half-open connection.
func (p *netCut) strand() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stranded = true
	for c, upstream := range p.conns {
		if !upstream {
			_ = c.Close()
		}
	}
}

func (p *netCut) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stranded = false
	for c := range p.conns {
		_ = c.Close()
	}
}

// recoveryRules is examples/recovery/rtcio.yaml (the built-in rules with
// server.recovery: 2m) with the window set to window.
func recoveryRules(t testing.TB, window string) []byte {
	t.Helper()
	src, err := os.ReadFile("../examples/recovery/rtcio.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(src), "recovery: 2m", "recovery: "+window, 1)
	if s == string(src) && window != "2m" {
		t.Fatal("examples/recovery/rtcio.yaml no longer sets recovery: 2m")
	}
	return []byte(s)
}

// fastRedial makes socket.io-client retry every ~100 ms instead of its
// default backoff of one to five seconds.
func fastRedial(opts map[string]any) map[string]any {
	out := map[string]any{"reconnectionDelay": 100, "reconnectionDelayMax": 200, "randomizationFactor": 0}
	for k, v := range opts {
		out[k] = v
	}
	return out
}

// health reads /health.
func health(t testing.TB, url string) map[string]any {
	t.Helper()
	resp, err := http.Get(url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

// waitHealth waits until /health reports sockets and suspended.
func waitHealth(t testing.TB, url string, sockets, suspended int) {
	t.Helper()
	deadline := time.Now().Add(jsclient.DefaultTimeout)
	for {
		h := health(t, url)
		if h["sockets"] == float64(sockets) && h["suspended"] == float64(suspended) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("health: %v, want sockets %d, suspended %d", h, sockets, suspended)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recoveryRoom is a server with src behind a netCut, alice connected
// through the cut and bob directly, both in room r1, alice with a cached
// media state, everything they heard so far read.
type recoveryRoom struct {
	rt         *router.Router
	url        string
	cut        *netCut
	js         *jsclient.Process
	alice, bob *jsclient.Client
	a, b       string // their socket ids
}

func newRecoveryRoom(t *testing.T, src []byte, opts map[string]any) *recoveryRoom {
	t.Helper()
	rt, url := startRouter(t, src)
	f := &recoveryRoom{rt: rt, url: url, cut: newNetCut(t, url), js: jsclient.Start(t)}
	alice := f.js.Connect("alice", f.cut.URL(), fastRedial(opts)).WithT(t)
	bob := f.js.Connect("bob", url, opts).WithT(t)
	f.alice, f.bob = alice, bob
	f.a, f.b = alice.WaitConnected(), bob.WaitConnected()
	alice.Emit("join-room", map[string]any{"roomId": "r1", "name": "alice"})
	awaitJoin(t, f.js, url, opts, alice, "r1")
	bob.Emit("join-room", map[string]any{"roomId": "r1", "name": "bob"})
	bob.Expect(t, "user-connected", map[string]any{"id": f.a, "name": "alice"})
	// These give alice an offset: a client that has received no event yet
	// has nothing to recover from.
	alice.Expect(t, "user-connected", map[string]any{"id": f.b, "name": "bob"})
	alice.Expect(t, "#rtcio:init-offer", map[string]any{"source": f.b})
	ms := map[string]any{"roomId": "r1", "mic": false, "cam": true}
	alice.Emit("media-state", ms)
	bob.Expect(t, "media-state", ms)
	return f
}

// dropAlice cuts alice's network and keeps it down until restore, and
// waits until she and /health know it.
func (f *recoveryRoom) dropAlice(t *testing.T, sockets, suspended int) {
	t.Helper()
	f.cut.drop()
	if reason := f.alice.WaitDisconnect(); reason != "transport close" && reason != "transport error" {
		t.Fatalf("alice: disconnect %q", reason)
	}
	waitHealth(t, f.url, sockets, suspended)
}

// expectNewSession restores alice's network and checks that she comes
// back as a new socket.
func (f *recoveryRoom) expectNewSession(t *testing.T) {
	t.Helper()
	f.cut.restore()
	if id := f.alice.WaitConnected(); id == f.a || f.alice.Recovered() {
		t.Fatalf("alice came back as %q (recovered %v); want a new socket", id, f.alice.Recovered())
	}
}

// expectLeft checks that bob heard alice leave.
func (f *recoveryRoom) expectLeft(t *testing.T) {
	t.Helper()
	f.bob.Expect(t, "#rtcio:peer-left", map[string]any{"id": f.a})
	f.bob.Expect(t, "user-disconnected", map[string]any{"id": f.a})
}

// expectRecovered lets alice's client through cut again and checks that
// it recovers the session a: same id, socket.recovered.
func expectRecovered(t *testing.T, cut *netCut, alice *jsclient.Client, a string) {
	t.Helper()
	cut.restore()
	if got := alice.WaitConnected(); got != a {
		t.Fatalf("alice came back as %q, want %q", got, a)
	}
	if !alice.Recovered() {
		t.Fatal("socket.recovered is false")
	}
}

// lateJoiner connects carol to url and joins r1, where a recovered alice
// (unmuted since) and bob are: she is backfilled with alice's name (socket
// data) and her cached media state (a socket store), then bob's name, and
// both hear of her. It returns carol.
func lateJoiner(t *testing.T, js *jsclient.Process, url string, opts map[string]any, alice, bob *jsclient.Client) *jsclient.Client {
	t.Helper()
	a, b := alice.ID(), bob.ID()
	carol := js.Connect("carol", url, opts).WithT(t)
	carol.WaitConnected()
	carol.Emit("join-room", map[string]any{"roomId": "r1", "name": "carol"})
	carol.Expect(t, "user-connected", map[string]any{"id": a, "name": "alice"})
	carol.Expect(t, "media-state", map[string]any{"id": a, "roomId": "r1", "mic": true, "cam": true})
	carol.Expect(t, "user-connected", map[string]any{"id": b, "name": "bob"})
	for _, p := range []*jsclient.Client{alice, bob} {
		p.Expect(t, "user-connected", map[string]any{"id": carol.ID(), "name": "carol"})
		p.Expect(t, "#rtcio:init-offer", map[string]any{"source": carol.ID()})
	}
	return carol
}

// TestRecoveryKeepsSession runs examples/recovery as its README describes:
// it cuts a client's TCP connection and lets it come back within the
// window. The client gets its id back with socket.recovered, is still in
// its room with its name and cached media state, receives what was sent to
// it meanwhile, and its peer never hears it left.
func TestRecoveryKeepsSession(t *testing.T) {
	for _, mode := range transportModes {
		if mode.name == "upgrade" {
			continue // the redial starts on polling and upgrades: covered by the two others
		}
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			f := newRecoveryRoom(t, recoveryRules(t, "2m"), mode.opts)
			alice, bob, a, b := f.alice, f.bob, f.a, f.b
			f.dropAlice(t, 2, 1)

			// While alice is away: a room emit and a relay to her, kept for
			// the replay; and an event of hers, which socket.io-client
			// buffers until it is connected again.
			share := map[string]any{"roomId": "r1", "streamId": "s-1"}
			bob.Emit("stopScreenShare", share)
			bob.Emit("#rtcio:message", map[string]any{"target": a, "data": map[string]any{"sdp": "offer"}})
			unmuted := map[string]any{"roomId": "r1", "mic": true, "cam": true}
			alice.Emit("media-state", unmuted)
			bob.ExpectNothing(300 * time.Millisecond)

			expectRecovered(t, f.cut, alice, a)
			alice.Expect(t, "stopScreenShare", share)
			alice.Expect(t, "#rtcio:message", map[string]any{"source": b, "target": a, "data": map[string]any{"sdp": "offer"}})
			bob.Expect(t, "media-state", unmuted)
			waitHealth(t, f.url, 2, 0)

			// Still in r1 both ways, and the relay still sees a shared room.
			bob.Emit("stopScreenShare", share)
			alice.Expect(t, "stopScreenShare", share)
			alice.Emit("stopScreenShare", share)
			bob.Expect(t, "stopScreenShare", share)
			alice.Emit("#rtcio:message", map[string]any{"target": b, "data": "answer"})
			bob.Expect(t, "#rtcio:message", map[string]any{"source": a, "target": b, "data": "answer"})

			carol := lateJoiner(t, f.js, f.url, mode.opts, alice, bob)
			// Bob never heard alice leave.
			bob.ExpectNothing(100 * time.Millisecond)

			// Saying goodbye is never suspended: the peers hear it at once
			// (even when the DISCONNECT packet and the transport close race).
			alice.Close()
			f.expectLeft(t)
			carol.Expect(t, "#rtcio:peer-left", map[string]any{"id": a})
			carol.Expect(t, "user-disconnected", map[string]any{"id": a})
			waitHealth(t, f.url, 2, 0)
		})
	}
}

// TestRecoveryWindowExpires keeps the client away longer than the window:
// its peers then hear it leave, once, its state is gone, and the client
// comes back as a new socket.
func TestRecoveryWindowExpires(t *testing.T) {
	f := newRecoveryRoom(t, recoveryRules(t, "500ms"), wsOnly)
	start := time.Now()
	f.dropAlice(t, 2, 1)
	f.bob.ExpectNothing(300 * time.Millisecond)
	f.expectLeft(t)
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("peer-left after %v, before the window", d)
	}
	waitHealth(t, f.url, 1, 0)
	f.bob.ExpectNothing(300 * time.Millisecond)
	f.expectNewSession(t)

	// Her media state went with her: a late joiner hears only of bob.
	carol := f.js.Connect("carol", f.url, wsOnly).WithT(t)
	carol.WaitConnected()
	carol.Emit("join-room", map[string]any{"roomId": "r1", "name": "carol"})
	carol.Expect(t, "user-connected", map[string]any{"id": f.b, "name": "bob"})
	carol.ExpectNothing(200 * time.Millisecond)
}

// TestRecoveryOff: without server.recovery a transport drop is a
// disconnect, cleaned up at once, and the client comes back as a new
// socket.
func TestRecoveryOff(t *testing.T) {
	f := newRecoveryRoom(t, builtinRules(t), wsOnly)
	f.cut.drop()
	f.alice.WaitDisconnect()
	f.expectLeft(t)
	waitHealth(t, f.url, 1, 0)
	f.expectNewSession(t)
}

// TestRecoveryDrain: draining (and so shutting down) cleans up suspended
// sockets at once, without waiting for their windows, and their peers
// hear them leave; Close then returns without waiting either.
func TestRecoveryDrain(t *testing.T) {
	f := newRecoveryRoom(t, recoveryRules(t, "1m"), wsOnly)
	f.dropAlice(t, 2, 1)
	f.rt.Drain()
	f.expectLeft(t)
	waitHealth(t, f.url, 1, 0)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := f.rt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if reason := f.bob.WaitDisconnect(); reason != "transport close" {
		t.Fatalf("bob: disconnect %q", reason)
	}
}

// TestRecoveryHalfOpen: a recovered client loses its network again but
// the server still holds the old connection open (no FIN reached it) when
// the client is back. The two sockets with one id are resolved by closing
// both, and the client's next attempt recovers the session.
func TestRecoveryHalfOpen(t *testing.T) {
	f := newRecoveryRoom(t, recoveryRules(t, "1m"), wsOnly)
	alice, bob := f.alice, f.bob

	// A first drop and recovery leaves a session the library keeps.
	f.dropAlice(t, 2, 1)
	f.cut.restore()
	alice.WaitConnected()
	if !alice.Recovered() {
		t.Fatal("first recovery failed")
	}
	waitHealth(t, f.url, 2, 0)

	f.cut.strand()
	alice.WaitDisconnect()
	for alice.WaitConnected() != f.a || !alice.Recovered() {
		// The client may be sent away once (both transports closed)
		// before it recovers; it retries by itself.
		alice.WaitDisconnect()
	}
	waitHealth(t, f.url, 2, 0)
	share := map[string]any{"roomId": "r1", "streamId": "s-2"}
	bob.Emit("stopScreenShare", share)
	alice.Expect(t, "stopScreenShare", share)
	alice.Emit("stopScreenShare", share)
	bob.Expect(t, "stopScreenShare", share)
	bob.ExpectNothing(100 * time.Millisecond)
}

// TestRecoveryHangUpIsFinal: a socket the server disconnects (a rule's
// disconnect action) is gone at once, recovery or not.
func TestRecoveryHangUpIsFinal(t *testing.T) {
	src := string(recoveryRules(t, "1m")) + `
  - event: leave-server
    do:
      - disconnect: true
`
	f := newRecoveryRoom(t, []byte(src), wsOnly)
	f.alice.Emit("leave-server")
	reason := f.alice.WaitDisconnect()
	f.expectLeft(t)
	switch reason {
	case "io server disconnect": // with a DISCONNECT packet: the client stays away
		waitHealth(t, f.url, 1, 0)
	case "transport close": // without one the client redials, as a new socket
		f.expectNewSession(t)
	default:
		t.Fatalf("alice: disconnect %q", reason)
	}
}
