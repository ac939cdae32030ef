package router

// Tests of the HTTP bounds (Router.HTTPServer, transport.serveHTTP): every
// one runs the router on 127.0.0.1 behind the server HTTPServer returns and
// talks to it over real sockets, raw where a well-behaved client would not
// do what the test needs.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/jsclient"
	"github.com/rtcio/rtcio-router/router/internal/sio/siotest"
)

// httpRules is the shipped rtcio.yaml with the heartbeat set to interval and
// timeout, which size the body deadline and the idle timeout: short values
// keep the tests fast.
func httpRules(t testing.TB, interval, timeout string) []byte {
	t.Helper()
	b, err := os.ReadFile("../rtcio.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, r := range [][2]string{{"ping_interval: 25s", "ping_interval: " + interval}, {"ping_timeout: 20s", "ping_timeout: " + timeout}} {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("rtcio.yaml has no %q to replace", r[0])
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	return []byte(s)
}

// httpServe runs a router for src on the http.Server from HTTPServer, as
// cmd/rtcio-router does, and returns it with the server and the base URL.
// Cleanup closes the router, then the server.
func httpServe(t testing.TB, src []byte) (*Router, *http.Server, string) {
	t.Helper()
	rt, err := New(Options{RulesFile: "http_test.yaml", Source: src, Logger: httpTestLogger()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv, url := serveOnLoopback(t, rt)
	return rt, srv, url
}

// serveOnLoopback serves rt on its http.Server from HTTPServer at a free
// 127.0.0.1 port and returns the server and the base URL. Cleanup closes
// the router, then the server.
func serveOnLoopback(t testing.TB, rt *Router) (*http.Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := rt.HTTPServer()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rt.Close(ctx)
		_ = srv.Close()
	})
	return srv, "http://" + ln.Addr().String()
}

// httpTestLogger logs like the router_test helpers: only with RTCIO_TEST_LOG.
func httpTestLogger() *slog.Logger {
	if os.Getenv("RTCIO_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// rawConn is a hand-written HTTP/1.1 connection.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func dialHTTP(t testing.TB, base string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawConn{Conn: c, br: bufio.NewReader(c)}
}

// response reads one response (body included) within d.
func (c *rawConn) response(d time.Duration) (code int, body string, err error) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// closedWithin reports whether the server closes the connection within d
// (EOF or reset), reading and dropping anything it sends meanwhile.
func (c *rawConn) closedWithin(d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c.br)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// halfPost sends a polling POST for sid whose body stops after a few bytes:
// with a declared length, or chunked with the first chunk cut short.
func (c *rawConn) halfPost(t testing.TB, sid string, chunked bool) {
	t.Helper()
	req := "POST /socket.io/?EIO=4&transport=polling&sid=" + sid + " HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain;charset=UTF-8\r\n"
	if chunked {
		req += "Transfer-Encoding: chunked\r\n\r\n64\r\n42[\"a\""
	} else {
		req += "Content-Length: 100\r\n\r\n42[\"a\""
	}
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
}

// TestHTTPPostWithoutSidRefusedUnread: a POST without a session id is not
// an engine.io request. Before, the handler read a chunked body whole with
// no deadline, so 2,000 such POSTs with one 65,000-byte chunk and no
// terminator held 182 MB for as long as their peers liked. Each must now
// get 400 without the server waiting for its body, and its connection
// closed, while the body is still "being sent". A POST with a made-up sid
// and a GET with a body (which the engine would never read) are refused
// the same way.
func TestHTTPPostWithoutSidRefusedUnread(t *testing.T) {
	_, _, base := httpServe(t, httpRules(t, "25s", "20s"))
	const n = 200
	chunk := "fde8\r\n" + strings.Repeat("x", 1024) // 65,000 announced, 1 KiB sent
	var wg sync.WaitGroup
	errs := make(chan error, n+2)
	try := func(i int, head string) {
		defer wg.Done()
		c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			errs <- err
			return
		}
		defer c.Close()
		rc := &rawConn{Conn: c, br: bufio.NewReader(c)}
		if _, err := io.WriteString(c, head+chunk); err != nil {
			errs <- fmt.Errorf("request %d: write: %v", i, err)
			return
		}
		code, _, err := rc.response(5 * time.Second)
		if err != nil || code != http.StatusBadRequest {
			errs <- fmt.Errorf("request %d: got %d, %v; want 400 before the body", i, code, err)
			return
		}
		if !rc.closedWithin(5 * time.Second) {
			errs <- fmt.Errorf("request %d: connection still open after the 400", i)
		}
	}
	post := "POST /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	others := []string{
		"POST /socket.io/?EIO=4&transport=polling&sid=made-up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
	}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go try(i, post)
	}
	for i, head := range others {
		wg.Add(1)
		go try(n+i, head)
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if failed++; failed <= 5 {
			t.Error(err)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d requests held or not refused", failed, n+2)
	}
}

// TestHTTPPostBodyDeadline: a polling POST on a valid session whose body
// stops half-way is answered 408 and its connection closed once the body
// deadline (ping_timeout) passes; before, it was held forever.
func TestHTTPPostBodyDeadline(t *testing.T) {
	const timeout = time.Second
	_, _, base := httpServe(t, httpRules(t, "5s", timeout.String()))
	var wg sync.WaitGroup
	for _, chunked := range []bool{false, true} {
		sid := siotest.PollHandshake(t, base, "", "")
		c := dialHTTP(t, base)
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			c.halfPost(t, sid, chunked)
			code, _, err := c.response(timeout + 10*time.Second)
			if err != nil || code != http.StatusRequestTimeout {
				t.Errorf("chunked=%v: got %d, %v; want 408 at the body deadline", chunked, code, err)
				return
			}
			// A lower bound only: the answer must come from the deadline,
			// not from refusing the request outright.
			if el := time.Since(start); el < timeout*8/10 {
				t.Errorf("chunked=%v: answered after %v, before the %v deadline", chunked, el, timeout)
			}
			if !c.closedWithin(5 * time.Second) {
				t.Errorf("chunked=%v: connection still open after the 408", chunked)
			}
		}()
	}
	wg.Wait()
}

// TestHTTPIdleKeepAliveClosed: a keep-alive connection that sends nothing
// after its first request is closed by the server after the idle timeout
// (ping_timeout); before, it was kept forever.
func TestHTTPIdleKeepAliveClosed(t *testing.T) {
	const timeout = time.Second
	_, _, base := httpServe(t, httpRules(t, "5s", timeout.String()))
	c := dialHTTP(t, base)
	if _, err := io.WriteString(c, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if code, _, err := c.response(5 * time.Second); err != nil || code != http.StatusOK {
		t.Fatalf("health: %d, %v", code, err)
	}
	start := time.Now()
	if !c.closedWithin(timeout + 10*time.Second) {
		t.Fatalf("idle keep-alive connection still open %v after its last request", time.Since(start))
	}
	if el := time.Since(start); el < timeout*8/10 {
		t.Fatalf("idle connection closed after %v, before the %v idle timeout", el, timeout)
	}
}

// TestHTTPMalformedPollingPostIs400: a polling POST whose packet makes the
// engine close the session while the POST is handled got 429 Too Many
// Requests from v3.0.6 (polling DoClose); a malformed request is a 400.
func TestHTTPMalformedPollingPostIs400(t *testing.T) {
	_, _, base := httpServe(t, httpRules(t, "25s", "20s"))
	// No CONNECT first: then the refusal closes the session during the
	// POST (once connected, the close comes after the POST's "ok").
	for _, payload := range []string{"42", "42[", `42["a"]x`, "41", "b"} {
		for _, chunked := range []bool{false, true} {
			sid := siotest.PollHandshake(t, base, "", "")
			if code, body := siotest.PollPost(t, base, sid, payload, chunked); code != http.StatusBadRequest {
				t.Errorf("POST %q (chunked=%v) = %d %q, want 400", payload, chunked, code, body)
			}
		}
	}
}

// TestHTTPClientsOutliveDeadlines: clients of the official JavaScript
// client stay connected well past the body deadline and the idle timeout
// (both ping_timeout, 1 s here) and still exchange events: the bounds cut
// neither long polls nor hijacked WebSockets.
//
// Polling runs with a ping interval twice the ping timeout, so every long
// poll waits longer than the deadlines, across two heartbeats. WebSocket
// and upgraded clients run on a second server whose ping interval is longer
// than the test: a WebSocket client on loopback answers a ping so fast that
// v3.0.6 can take its pong before arming the pong timeout (engine
// socket.schedulePing sends the ping, then calls resetPingTimeout) and
// drops it with "ping timeout", which this test is not about.
func TestHTTPClientsOutliveDeadlines(t *testing.T) {
	const interval, timeout = 2 * time.Second, time.Second
	_, _, pollBase := httpServe(t, httpRules(t, interval.String(), timeout.String()))
	_, _, wsBase := httpServe(t, httpRules(t, "1m", timeout.String()))
	js := jsclient.Start(t)
	modes := []struct {
		name, base string
		opts       map[string]any
	}{
		{"polling", pollBase, map[string]any{"transports": []string{"polling"}}},
		{"websocket", wsBase, map[string]any{"transports": []string{"websocket"}}},
		{"upgrade", wsBase, map[string]any{}},
	}
	type pair struct{ a, b *jsclient.Client }
	pairs := map[string]pair{}
	ids := map[*jsclient.Client]string{}
	for _, m := range modes {
		var p [2]*jsclient.Client
		for i := range p {
			opts := map[string]any{"reconnection": false}
			for k, v := range m.opts {
				opts[k] = v
			}
			p[i] = js.Connect(fmt.Sprintf("%s-%d", m.name, i), m.base, opts)
			ids[p[i]] = p[i].WaitConnected()
			if m.name == "upgrade" {
				p[i].WaitTransport("websocket")
			}
		}
		pairs[m.name] = pair{p[0], p[1]}
	}
	// Two heartbeats and a half: every polling long poll waits interval >
	// timeout, and every connection outlives the deadlines several times.
	time.Sleep(2*interval + interval/2)
	for c, id := range ids {
		if !c.Connected() || c.ID() != id {
			t.Fatalf("%s lost its connection (%q; id %q, was %q)", c.Name(), c.WaitDisconnect(), c.ID(), id)
		}
	}
	for name, p := range pairs {
		p.a.Emit("join-room", map[string]any{"roomId": name, "name": "a"})
		p.a.ExpectNothing(100 * time.Millisecond)
		p.b.Emit("join-room", map[string]any{"roomId": name, "name": "b"})
		p.b.Expect(t, "user-connected", map[string]any{"id": p.a.ID(), "name": "a"})
		p.a.Expect(t, "user-connected", map[string]any{"id": p.b.ID(), "name": "b"})
	}
}

// TestDrainEndsPollingRequests: shutting down as cmd/rtcio-router does
// (Drain, Close, then the http.Server's Shutdown, one 10 s budget) with a
// polling client connected, a raw long poll pending and a polling POST
// whose body is still arriving. Close must leave Shutdown nothing to wait
// for: the clients see the close at once (the CLOSE packet, "transport
// close"), the unfinished POST is cut with 503, and Shutdown returns
// without hitting its own deadline. The heartbeat is the default, so the
// body deadline (20 s) cannot be what ends the POST; before, Shutdown
// waited for it until "context deadline exceeded".
func TestDrainEndsPollingRequests(t *testing.T) {
	rt, srv, base := httpServe(t, httpRules(t, "25s", "20s"))
	js := jsclient.Start(t)
	a := js.Connect("a", base, map[string]any{"reconnection": false, "transports": []string{"polling"}})
	a.WaitConnected()

	pollSid := siotest.PollHandshake(t, base, "", "")
	if code, _ := siotest.PollPost(t, base, pollSid, "40", false); code != http.StatusOK {
		t.Fatalf("CONNECT POST = %d", code)
	}
	poll := dialHTTP(t, base)
	if _, err := io.WriteString(poll, "GET /socket.io/?EIO=4&transport=polling&sid="+pollSid+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The CONNECT reply, then the long poll that waits.
	if code, body, err := poll.response(5 * time.Second); err != nil || code != http.StatusOK || !strings.HasPrefix(body, "40") {
		t.Fatalf("CONNECT reply: %d %q %v", code, body, err)
	}
	if _, err := io.WriteString(poll, "GET /socket.io/?EIO=4&transport=polling&sid="+pollSid+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	post := dialHTTP(t, base)
	post.halfPost(t, siotest.PollHandshake(t, base, "", ""), false)
	time.Sleep(200 * time.Millisecond) // both requests reach their handlers

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rt.Drain()
	if err := rt.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("http.Server.Shutdown after Close: %v (a polling request kept it waiting)", err)
	}
	if code, body, err := poll.response(time.Second); err != nil || code != http.StatusOK || body != "1" {
		t.Errorf("pending long poll: %d %q %v, want 200 with the CLOSE packet", code, body, err)
	}
	if code, _, err := post.response(time.Second); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("unfinished POST: %d %v, want 503", code, err)
	}
	if reason := a.WaitDisconnect(); reason != "transport close" {
		t.Errorf("polling client: disconnect reason %q, want transport close", reason)
	}
}
