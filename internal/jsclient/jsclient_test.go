package jsclient

import (
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// startServer runs a minimal socket.io server with handlers that exercise
// each harness feature, and returns its base URL.
func startServer(t *testing.T) string {
	t.Helper()
	opts := socket.DefaultServerOptions()
	opts.SetPerMessageDeflate(&types.PerMessageDeflate{Threshold: 1 << 20})
	io := socket.NewServer(nil, opts)
	io.Use(func(s *socket.Socket, next func(*socket.ExtendedError)) {
		if tok, _ := s.Handshake().Auth["token"].(string); tok == "bad" {
			next(socket.NewExtendedError("unauthorized", map[string]any{"code": 401}))
			return
		}
		next(nil)
	})
	io.On("connection", func(a ...any) {
		s := a[0].(*socket.Socket)
		id := string(s.Id())
		// echo: answer the ack if there is one, else emit the args back.
		s.On("echo", func(args ...any) {
			if ack, rest := splitAck(args); ack != nil {
				ack(rest, nil)
			} else {
				s.Emit("echo", args...)
			}
		})
		s.On("whoami", func(args ...any) {
			ack, _ := splitAck(args)
			hs := s.Handshake()
			ack([]any{map[string]any{
				"id":    id,
				"auth":  hs.Auth,
				"app":   hs.Query.Query().Get("app"),
				"xtest": hs.Headers.Header().Get("X-Test"),
			}}, nil)
		})
		s.On("burst", func(args ...any) {
			n, _ := args[0].(float64)
			for i := range int(n) {
				s.Emit("n", i)
			}
		})
		s.On("shout", func(args ...any) { s.Broadcast().Emit("shout", args...) })
		// ask: a server-to-client ack round trip, reported back as "answer".
		s.On("ask", func(args ...any) {
			s.Timeout(3*time.Second).Emit("question", append(args, socket.Ack(func(res []any, err error) {
				if err != nil {
					s.Emit("answer", "timeout")
					return
				}
				s.Emit("answer", res...)
			}))...)
		})
		s.On("kick", func(...any) { s.Disconnect(false) })
		s.On("disconnect", func(a ...any) { io.Emit("left", id, a[0]) })
	})

	mux := http.NewServeMux()
	mux.Handle("/socket.io/", io.ServeHandler(nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() {
		io.Close(nil)
		srv.Close()
	})
	return "http://" + ln.Addr().String()
}

func splitAck(args []any) (socket.Ack, []any) {
	if n := len(args); n > 0 {
		if ack, ok := args[n-1].(socket.Ack); ok {
			return ack, args[:n-1]
		}
	}
	return nil, args
}

// recorder is a testing.TB whose failures are captured instead of reported,
// to prove that the harness fails when it should. Fatal* end the calling
// goroutine as the real ones do, so call them through run.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Failed() bool { return len(r.messages()) > 0 }

func (r *recorder) messages() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.msgs, "\n")
}

// run calls f on its own goroutine, so that Fatalf's Goexit ends only f.
func (r *recorder) run(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

func TestTransports(t *testing.T) {
	t.Parallel()
	url := startServer(t)
	p := Start(t)
	for _, tc := range []struct {
		name       string
		transports []string // nil: socket.io's default, polling then upgrade
		want       string
	}{
		{"polling", []string{"polling"}, "polling"},
		{"websocket", []string{"websocket"}, "websocket"},
		{"upgrade", nil, "websocket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := map[string]any{}
			if tc.transports != nil {
				opts["transports"] = tc.transports
			}
			c := p.Connect(tc.name, url, opts).WithT(t)
			defer c.Close()
			id := c.WaitConnected()
			if id == "" || id != c.ID() {
				t.Fatalf("WaitConnected()=%q, ID()=%q", id, c.ID())
			}
			c.WaitTransport(tc.want)
			if got := c.Transport(); got != tc.want {
				t.Fatalf("transport %q, want %q", got, tc.want)
			}

			c.Emit("echo", map[string]any{"n": 1, "s": "x", "nested": []int{1, 2}}, 2, nil, true)
			c.Expect(t, "echo", map[string]any{"n": 1, "s": "x", "nested": []any{1, 2}}, 2, nil, true)

			// Order is preserved across a burst.
			const n = 300
			c.Emit("burst", n)
			for i := range n {
				c.Expect(t, "n", i)
			}
			c.ExpectNothing(50 * time.Millisecond)
			if got := len(c.Received()); got != n+1 {
				t.Fatalf("Received() has %d events, want %d", got, n+1)
			}
		})
	}
}

func TestAcks(t *testing.T) {
	t.Parallel()
	url := startServer(t)
	p := Start(t)
	c := p.Connect("a", url, map[string]any{
		"auth":         map[string]any{"token": "good"},
		"query":        map[string]any{"app": "demo"},
		"extraHeaders": map[string]any{"x-test": "hdr"},
		"transports":   []string{"polling"}, // extraHeaders reach every request
	})
	id := c.WaitConnected()

	if got := c.EmitWithAck("echo", "a", 1, map[string]any{"k": []any{}}); !Equal(got, []any{"a", 1, map[string]any{"k": []any{}}}) {
		t.Fatalf("ack args %v", got)
	}
	if got := c.EmitWithAck("echo"); len(got) != 0 {
		t.Fatalf("empty ack args %v", got)
	}
	got := c.EmitWithAck("whoami")
	want := []any{map[string]any{"id": id, "auth": map[string]any{"token": "good"}, "app": "demo", "xtest": "hdr"}}
	if !Equal(got, want) {
		t.Fatalf("whoami = %v, want %v", got, want)
	}

	// An event nobody handles is never acked: the timeout is reported.
	start := time.Now()
	if _, err := c.EmitWithAckTimeout(200*time.Millisecond, "nobody-listens"); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("want ack timeout, got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("ack timeout took %v", d)
	}

	// Server-to-client ack.
	c.Emit("ask", "ready?")
	q := c.Expect(t, "question", "ready?")
	if q.AckID == 0 {
		t.Fatal("question carries no ack id")
	}
	c.Reply(q, "yes", 42)
	c.Expect(t, "answer", "yes", 42)
	c.ExpectNothing(50 * time.Millisecond)
}

func TestConnectError(t *testing.T) {
	t.Parallel()
	url := startServer(t)
	p := Start(t)
	c := p.Connect("bad", url, map[string]any{"auth": map[string]any{"token": "bad"}})
	e := c.WaitConnectError()
	if e.Message != "unauthorized" || !Equal(e.Data, map[string]any{"code": 401}) || e.Type != "" {
		t.Fatalf("connect error %+v", e)
	}
	if c.Connected() || c.ID() != "" {
		t.Fatal("refused client looks connected")
	}

	// WaitConnected fails at once on a refusal instead of waiting it out.
	rec := &recorder{TB: t}
	start := time.Now()
	rec.run(func() { c.WithT(rec).WaitConnected() })
	if msg := rec.messages(); !strings.Contains(msg, `refused: "unauthorized" data={"code":401}`) {
		t.Fatalf("WaitConnected message: %q", msg)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("WaitConnected took %v on a refused client", d)
	}

	// A dead port is a transport error, which the client keeps retrying.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	d := p.Connect("dead", dead, map[string]any{"reconnection": false})
	if e := d.WaitConnectError(); e.Type != "TransportError" {
		t.Fatalf("dead port: %+v", e)
	}
}

func TestExpectNothingAndFailures(t *testing.T) {
	t.Parallel()
	url := startServer(t)
	p := Start(t)
	a := p.Connect("a", url, nil)
	b := p.Connect("b", url, map[string]any{"transports": []string{"websocket"}})
	a.WaitConnected()
	b.WaitConnected()

	b.Emit("shout", "hi")
	ev := a.Expect(t, "shout", "hi")
	b.ExpectNothing(200 * time.Millisecond) // the sender does not hear itself

	a.Emit("shout", "ho")
	rec := &recorder{TB: t}
	start := time.Now()
	rec.run(func() { b.WithT(rec).ExpectNothing(2 * time.Second) })
	if msg := rec.messages(); !strings.Contains(msg, `shout ["ho"]`) {
		t.Fatalf("ExpectNothing did not fail properly: %q", msg)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("ExpectNothing took %v to notice an event", d)
	}

	// A mismatch names what was wanted and what came.
	a.Emit("echo", "x")
	a.Emit("echo", "y")
	rec = &recorder{TB: t}
	rec.run(func() { a.Expect(rec, "echo", "y") })
	if msg := rec.messages(); !strings.Contains(msg, `want echo ["y"]`) || !strings.Contains(msg, `got  echo ["x"]`) {
		t.Fatalf("Expect message: %q", msg)
	}
	a.WaitFor("echo", 0)

	// A timeout shows the history.
	rec = &recorder{TB: t}
	rec.run(func() { a.WithT(rec).Next(100 * time.Millisecond) })
	if msg := rec.messages(); !strings.Contains(msg, "no event within 100ms") || !strings.Contains(msg, `shout ["hi"]`) {
		t.Fatalf("Next message: %q", msg)
	}

	// WaitFor skips chatter; Seq orders events across clients.
	b.Emit("echo", "1")
	b.Emit("shout", "late")
	if got := b.WaitFor("shout", 0); got.Seq <= ev.Seq {
		t.Fatalf("seq %d after %d", got.Seq, ev.Seq)
	}
}

func TestDisconnects(t *testing.T) {
	t.Parallel()
	url := startServer(t)
	p := Start(t)
	watch := p.Connect("watch", url, nil)
	watch.WaitConnected()

	for _, tc := range []struct {
		name       string
		do         func(c *Client)
		client     string // reason the client sees
		server     string // reason the server sees
		transports []string
	}{
		// Polling only where the server's reason is asserted: over WebSocket,
		// socket.io v3.0.6 reports about 1 in 5 clean client disconnects as
		// "transport close" (and sometimes fires "disconnect" twice).
		{"close", (*Client).Close, "io client disconnect", "client namespace disconnect", []string{"polling"}},
		{"drop-ws", (*Client).Drop, "forced close", "transport close", []string{"websocket"}},
		{"drop-polling", (*Client).Drop, "forced close", "transport close", []string{"polling"}},
		{"kick", func(c *Client) { c.Emit("kick") }, "io server disconnect", "server namespace disconnect", []string{"polling"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := p.Connect(tc.name, url, map[string]any{"transports": tc.transports}).WithT(t)
			defer c.Close()
			id := c.WaitConnected()
			tc.do(c)
			if got := c.WaitDisconnect(); got != tc.client {
				t.Errorf("client reason %q, want %q", got, tc.client)
			}
			watch.Expect(t, "left", id, tc.server)
		})
	}

	// Names can be reused after Close.
	again := p.Connect("close", url, nil)
	again.WaitConnected()
	again.Emit("echo", "again")
	again.Expect(t, "echo", "again")
}

func TestDriverRobustness(t *testing.T) {
	t.Parallel()
	url := startServer(t)
	rec := &recorder{TB: t}
	p := Start(rec)

	// Garbage on stdin gets an error line, not a crash.
	for _, line := range []string{"not json", `{"cmd":"nope"}`, `[1,2]`, `null`, `{"cmd":"emit"}`} {
		p.wmu.Lock()
		p.stdin.Write([]byte(line + "\n"))
		p.wmu.Unlock()
	}
	if _, err := p.call(map[string]any{"cmd": "emit", "name": "ghost", "event": "x"}, DefaultTimeout); err == nil || !strings.Contains(err.Error(), "no client") {
		t.Fatalf("emit to unknown client: %v", err)
	}
	if msg := rec.messages(); strings.Count(msg, "driver rejected a command") != 5 || !strings.Contains(msg, "bad JSON") {
		t.Fatalf("rejections: %q", msg)
	}
	c := p.Connect("a", url, nil)
	c.WaitConnected()
	c.Emit("echo", 1)
	c.Expect(t, "echo", 1)

	// Unserialisable args fail the emit, not the driver.
	if _, err := c.EmitWithAckTimeout(0, "echo", func() {}); err == nil {
		t.Fatal("emitting a func succeeded")
	}

	// If node dies, waits end at once with an explanation.
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, ok := c.TryNext(10 * time.Second); ok {
		t.Fatal("event from a dead driver")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("TryNext on a dead driver took %v", d)
	}
	rec2 := &recorder{TB: t}
	rec2.run(func() { c.WithT(rec2).Emit("echo", 2) })
	if msg := rec2.messages(); !strings.Contains(msg, "node driver") {
		t.Fatalf("emit on a dead driver: %q", msg)
	}
	if msg := rec.messages(); !strings.Contains(msg, "exited unexpectedly") {
		t.Fatalf("death not reported: %q", msg)
	}
}

func TestEqual(t *testing.T) {
	type pt struct {
		X int    `json:"x"`
		S string `json:"s"`
	}
	for _, tc := range []struct {
		a, b any
		want bool
	}{
		{map[string]any{"x": 1.0, "s": "a"}, pt{1, "a"}, true},
		{[]any{1, "2"}, []any{1.0, "2"}, true},
		{[]any{}, []any{}, true},
		{[]any{}, nil, false},
		{map[string]any{"x": 1}, map[string]any{"x": 2}, false},
		{map[string]int{"a": 1}, map[string]any{"a": float64(1)}, true},
		{func() {}, func() {}, false},
	} {
		if got := Equal(tc.a, tc.b); got != tc.want {
			t.Errorf("Equal(%#v, %#v) = %v", tc.a, tc.b, got)
		}
	}
}

// TestNoLeaks checks that Cleanup leaves no harness goroutine behind, even
// with a client still open and one still retrying a dead port.
func TestNoLeaks(t *testing.T) {
	url := startServer(t)
	t.Run("inner", func(t *testing.T) {
		p := Start(t)
		p.Connect("open", url, nil).WaitConnected()
		p.Connect("retrying", "http://127.0.0.1:1", nil)
	})
	deadline := time.Now().Add(2 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "jsclient.(*Process)") && !strings.Contains(stacks, "os/exec.") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines left after Cleanup:\n%s", stacks)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
