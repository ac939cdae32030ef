package router_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/jsclient"
	"github.com/rtcio/rtcio-router/router"
)

// testLogger is silent unless RTCIO_TEST_LOG=1, because the server logs from
// its own goroutines, which may outlive a test's t.Log.
func testLogger() *slog.Logger {
	if os.Getenv("RTCIO_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// builtinRules is the shipped rtcio.yaml, the reference behaviour.
func builtinRules(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../rtcio.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startRouter runs a real router on 127.0.0.1 with the given rules and
// returns it with its base URL; it is shut down when the test ends.
func startRouter(t testing.TB, src []byte) (*router.Router, string) {
	t.Helper()
	return startRouterEnv(t, src, map[string]string{})
}

// startRouterEnv is startRouter with an environment for env.NAME.
func startRouterEnv(t testing.TB, src []byte, environ map[string]string) (*router.Router, string) {
	t.Helper()
	rt, err := router.New(router.Options{RulesFile: "test.yaml", Source: src, Logger: testLogger(), Environ: environ})
	if err != nil {
		t.Fatalf("router.New: %v", err)
	}
	return rt, serve(t, rt)
}

// serve runs rt on 127.0.0.1 and returns its base URL; it is shut down
// when the test ends.
func serve(t testing.TB, rt *router.Router) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := rt.HTTPServer() // the production bounds (body, idle, handshake cap)
	srv.ReadHeaderTimeout = 5 * time.Second
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := rt.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		_ = srv.Close()
	})
	return "http://" + ln.Addr().String()
}

// transportModes are the three ways a socket.io v4 client talks to a
// server; every seed behaviour is checked over each.
var transportModes = []struct {
	name string
	opts map[string]any
}{
	{"polling", map[string]any{"transports": []string{"polling"}}},
	{"websocket", map[string]any{"transports": []string{"websocket"}}},
	{"upgrade", map[string]any{}},
}

// peer is a test client of either library, so the seed behaviour is
// checked against both the official JavaScript client and the Go one.
type peer interface {
	ID() string
	Emit(event string, args ...any)
	Expect(t testing.TB, name string, want ...any)
	ExpectNothing(d time.Duration)
	Close()
}

// jsPeer adapts a jsclient.Client to peer.
type jsPeer struct{ *jsclient.Client }

func (p jsPeer) Expect(t testing.TB, name string, want ...any) {
	t.Helper()
	p.Client.Expect(t, name, want...)
}

// goPeer adapts a goClient to peer.
type goPeer struct{ *goClient }

func (p goPeer) ID() string                     { return p.id() }
func (p goPeer) Emit(event string, args ...any) { p.emit(event, args...) }
func (p goPeer) ExpectNothing(d time.Duration)  { p.nothing(d) }
func (p goPeer) Close()                         { p.s.Disconnect() }
func (p goPeer) Expect(t testing.TB, name string, want ...any) {
	t.Helper()
	p.expect(name, want...)
}

// clientKinds connect a peer of each library in a transport mode. The JS
// client waits for the upgrade in "upgrade" mode, so that event order is
// deterministic.
var clientKinds = []struct {
	name    string
	connect func(t *testing.T, js *jsclient.Process, url, name, mode string, opts map[string]any) peer
}{
	{"js", func(t *testing.T, js *jsclient.Process, url, name, mode string, opts map[string]any) peer {
		c := js.Connect(name, url, opts).WithT(t)
		c.WaitConnected()
		if mode == "upgrade" {
			c.WaitTransport("websocket")
		}
		return jsPeer{c}
	}},
	{"go", func(t *testing.T, _ *jsclient.Process, url, _, mode string, _ map[string]any) peer {
		return goPeer{dialGo(t, url, mode, nil)}
	}},
}
