package router

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/rtcio/rtcio-router/router/internal/sio"
	"github.com/rtcio/rtcio-router/rules"
)

// countingWire stands in for the network so a benchmark measures the rule
// engine alone: validation, expressions, payload building, state.
type countingWire struct{ sent int }

func (w *countingWire) send([]string, string, string, []any) error { w.sent++; return nil }
func (w *countingWire) sendTo(*conn, string, []any) error          { w.sent++; return nil }
func (*countingWire) join(*conn, string)                           {}
func (*countingWire) leave(*conn, string)                          {}
func (*countingWire) hangUp(*conn)                                 {}

// benchRouter is a Router on the built-in rules with no transport.
func benchRouter(b testing.TB) (*Router, *countingWire) {
	b.Helper()
	src, err := os.ReadFile("../rtcio.yaml")
	if err != nil {
		b.Fatal(err)
	}
	r := &Router{log: slog.New(slog.NewTextHandler(io.Discard, nil)), st: newState()}
	w := &countingWire{}
	r.st.wire = w
	set, err := rules.Parse("rtcio.yaml", src, rules.Options{Host: host{r.st}, Environ: map[string]string{}})
	if err != nil {
		b.Fatal(err)
	}
	r.st.syncStores(set)
	r.rules.Store(set)
	return r, w
}

func (r *Router) benchConn(id string) *conn {
	c := &conn{id: id, data: map[string]any{}, live: true}
	r.st.add(c)
	return c
}

// BenchmarkRuleJoinRoom applies join-room for a newcomer to a room of
// three members, one with a cached media state: 4 backfill emits, 2
// broadcasts. The newcomer leaves again between iterations (not timed
// separately; leave is a few map operations).
func BenchmarkRuleJoinRoom(b *testing.B) {
	r, w := benchRouter(b)
	set := r.Rules()
	for i, id := range []string{"m1", "m2", "m3"} {
		c := r.benchConn(id)
		r.runRules(set, c, "join-room", map[string]any{"roomId": "room-42", "name": id}, nil, nil)
		if i == 0 {
			r.runRules(set, c, "media-state", map[string]any{"roomId": "room-42", "mic": true, "cam": false}, nil, nil)
		}
	}
	newcomer := r.benchConn("newcomer")
	data := map[string]any{"roomId": "room-42", "name": "alice"}
	args := []any{data}
	w.sent = 0
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		r.runRules(set, newcomer, "join-room", data, args, nil)
		r.st.leave(newcomer, "room-42")
		n++
	}
	if w.sent != n*6 {
		b.Fatalf("sent %d emits, want %d", w.sent, n*6)
	}
}

// BenchmarkRuleMediaState applies media-state: validation, a store write
// and one broadcast of the payload verbatim.
func BenchmarkRuleMediaState(b *testing.B) {
	r, w := benchRouter(b)
	set := r.Rules()
	c := r.benchConn("s1")
	r.runRules(set, c, "join-room", map[string]any{"roomId": "room-42", "name": "a"}, nil, nil)
	data := map[string]any{"roomId": "room-42", "mic": true, "cam": false, "id": "s1"}
	args := []any{data}
	w.sent = 0
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		r.runRules(set, c, "media-state", data, args, nil)
		n++
	}
	if w.sent != n {
		b.Fatalf("sent %d, want %d", w.sent, n)
	}
}

// BenchmarkDisconnectRooms cleans up a socket that joined n rooms
// (server.max_rooms_per_socket raised to allow it): peer-left, the
// disconnecting rules (one user-disconnected per room) and leaving every
// room, all under the state lock that /health and every event wait for.
// Time per op should grow linearly with n.
func BenchmarkDisconnectRooms(b *testing.B) {
	for _, n := range []int{1000, 8000, 32000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			r, _ := benchRouter(b)
			set := r.Rules()
			set.Server.MaxRoomsPerSocket = n
			names := make([]any, n)
			for i := range names {
				names[i] = map[string]any{"roomId": fmt.Sprintf("mr-%d", i), "name": "hog"}
			}
			for b.Loop() {
				b.StopTimer()
				c := r.benchConn("hog")
				for _, d := range names {
					r.runRules(set, c, "join-room", d, []any{d}, nil)
				}
				b.StartTimer()
				r.cleanupLocked(c, "transport close")
			}
		})
	}
}

// panickyWire fails every delivery with a panic, standing in for any bug
// reached while a rule holds the state lock.
type panickyWire struct{ countingWire }

func (*panickyWire) send([]string, string, string, []any) error { panic("boom") }
func (*panickyWire) sendTo(*conn, string, []any) error          { panic("boom") }

// TestRulePanicReleasesLock: a panic while a rule runs drops that event
// and leaves the state lock free, so every other socket goes on.
func TestRulePanicReleasesLock(t *testing.T) {
	r, _ := benchRouter(t)
	r.st.wire = &panickyWire{}
	c := r.benchConn("a")
	r.handle(c, &sio.Event{Name: "join-room", Args: []any{map[string]any{"roomId": "r", "name": "a"}}})
	if !r.st.mu.TryLock() {
		t.Fatal("the state lock is still held after a rule panicked")
	}
	r.st.mu.Unlock()
}
