package router_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/jsclient"
	enginetransports "github.com/zishang520/socket.io/clients/engine/v3/transports"
	sio "github.com/zishang520/socket.io/clients/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// goClient is a test client built on the Go socket.io client library, the
// second independent implementation the router must interoperate with.
type goClient struct {
	t      *testing.T
	s      *sio.Socket
	mu     sync.Mutex
	cond   *sync.Cond
	events []jsclient.Event
	read   int
	gone   string // the disconnect reason, once disconnected
}

// dialGo connects a Go client; transport is "polling", "websocket" or ""
// for the default (polling, then upgrade). The Go client v3.0.6 itself
// sometimes never completes its handshake (about 1 in 50 under -race, also
// against a stock server), so a connection that does not come up within 5 s
// is retried, twice at most, with a fresh client. Under load it also
// sometimes sends CONNECT twice, and the server, like Node's, closes a
// connection that connects a namespace it is already in ("invalid state"):
// a client that is gone within connectSettle of connecting is retried too.
func dialGo(t *testing.T, url, transport string, auth map[string]any) *goClient {
	t.Helper()
	return retryGo(t, func() *goClient { return tryDialGo(t, url, transport, auth) })
}

// retryGo calls try, which connects a fresh Go client or returns nil,
// until it connects, three times at most (see dialGo).
func retryGo(t *testing.T, try func() *goClient) *goClient {
	t.Helper()
	for attempt := 1; ; attempt++ {
		if g := try(); g != nil {
			return g
		}
		if attempt == 3 {
			t.Fatal("go client: not connected (within 5s, and staying so), three times")
		}
	}
}

func tryDialGo(t *testing.T, url, transport string, auth map[string]any) *goClient {
	t.Helper()
	opts := sio.DefaultOptions()
	opts.SetForceNew(true)
	opts.SetReconnection(false)
	switch transport {
	case "polling":
		opts.SetTransports(types.NewSet[enginetransports.TransportCtor](enginetransports.Polling))
	case "websocket":
		opts.SetTransports(types.NewSet[enginetransports.TransportCtor](enginetransports.WebSocket))
	}
	if auth != nil {
		opts.SetAuth(auth)
	}
	return startGo(t, url, opts)
}

// dialGoRedial connects a Go client over WebSocket that reconnects by
// itself every ~100 ms, and so recovers its session when the server
// keeps it. A first connection that does not come up is retried, as in
// dialGo.
func dialGoRedial(t *testing.T, url string) *goClient {
	t.Helper()
	return retryGo(t, func() *goClient {
		opts := sio.DefaultOptions()
		opts.SetForceNew(true)
		opts.SetReconnection(true)
		opts.SetReconnectionDelay(100)
		opts.SetReconnectionDelayMax(200)
		opts.SetRandomizationFactor(0)
		opts.SetTransports(types.NewSet[enginetransports.TransportCtor](enginetransports.WebSocket))
		return startGo(t, url, opts)
	})
}

// startGo connects a Go client with opts and records what it receives;
// nil if it did not connect within 5 s, or was gone right after.
func startGo(t *testing.T, url string, opts sio.OptionsInterface) *goClient {
	t.Helper()
	s, err := sio.Connect(url, opts)
	if err != nil {
		t.Fatalf("go client: %v", err)
	}
	g := &goClient{t: t, s: s}
	g.cond = sync.NewCond(&g.mu)
	connected := make(chan struct{})
	var once sync.Once
	s.On("connect", func(...any) { once.Do(func() { close(connected) }) })
	s.OnAny(func(args ...any) {
		name, _ := args[0].(string)
		g.mu.Lock()
		g.events = append(g.events, jsclient.Event{Name: name, Args: append([]any{}, args[1:]...)})
		g.cond.Broadcast()
		g.mu.Unlock()
	})
	s.On("disconnect", func(args ...any) {
		g.mu.Lock()
		g.gone = fmt.Sprint(args...)
		g.cond.Broadcast()
		g.mu.Unlock()
	})
	t.Cleanup(func() { s.Disconnect() })
	select {
	case <-connected:
	case <-time.After(5 * time.Second):
		s.Disconnect()
		return nil
	}
	time.Sleep(connectSettle)
	g.mu.Lock()
	gone := g.gone
	g.mu.Unlock()
	if gone != "" {
		t.Logf("go client: disconnected right after connecting (%s); retrying", gone)
		return nil
	}
	return g
}

// connectSettle is how long dialGo watches a new Go client for the
// duplicate-CONNECT close; it came 5 ms after the connect when seen.
const connectSettle = 50 * time.Millisecond

func (g *goClient) id() string { return g.s.Id() }

func (g *goClient) emit(event string, args ...any) {
	g.t.Helper()
	if err := g.s.Emit(event, args...); err != nil {
		g.t.Fatalf("go client emit %s: %v", event, err)
	}
}

// ack emits with an acknowledgement and returns the server's answer.
func (g *goClient) ack(event string, args ...any) []any {
	g.t.Helper()
	got := make(chan []any, 1)
	g.s.Timeout(5*time.Second).EmitWithAck(event, args...)(func(a []any, err error) {
		if err != nil {
			got <- nil
			return
		}
		got <- a
	})
	a := <-got
	if a == nil {
		g.t.Fatalf("go client: no ack for %s", event)
	}
	return a
}

// next waits for the next unread event.
func (g *goClient) next(timeout time.Duration) (jsclient.Event, bool) {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() { g.mu.Lock(); g.cond.Broadcast(); g.mu.Unlock() })
	defer timer.Stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.read >= len(g.events) {
		if time.Now().After(deadline) {
			return jsclient.Event{}, false
		}
		g.cond.Wait()
	}
	ev := g.events[g.read]
	g.read++
	return ev, true
}

func (g *goClient) expect(name string, want ...any) {
	g.t.Helper()
	ev, ok := g.next(5 * time.Second)
	if !ok {
		g.mu.Lock()
		gone := g.gone
		g.mu.Unlock()
		if gone != "" {
			g.t.Fatalf("go client: want %s %v, nothing arrived; disconnected: %s", name, want, gone)
		}
		g.t.Fatalf("go client: want %s %v, nothing arrived (still connected)", name, want)
	}
	if ev.Name != name || !jsclient.Equal(ev.Args, append([]any{}, want...)) {
		g.t.Fatalf("go client: want %s %v\n\tgot %s", name, want, ev)
	}
}

func (g *goClient) nothing(d time.Duration) {
	g.t.Helper()
	if ev, ok := g.next(d); ok {
		g.t.Fatalf("go client: want nothing, got %s", ev)
	}
}
