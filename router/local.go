package router

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/rtcio/rtcio-router/router/internal/sio"
	"github.com/rtcio/rtcio-router/rules"
)

// Local runs a rules file in-process, without sockets or a network: the
// same dispatcher, relay, state and rules as a server, with every delivery
// recorded instead of sent. `rtcio-router test` runs config tests on it,
// so they exercise exactly what the server would do.
type Local struct {
	r   *Router
	rec *recorder
}

// Delivery is one event as a socket would have received it.
type Delivery struct {
	To    string // socket id
	Event string
	Args  []any
}

// NewLocal compiles the rules of opts (RulesFile, or Source named
// RulesFile) for an in-process router.
func NewLocal(opts Options) (*Local, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &Router{log: opts.Logger, opts: opts, st: newState()}
	rec := &recorder{st: r.st}
	r.st.wire = rec
	set, _, err := r.load() // Local keeps no metrics
	if err != nil {
		return nil, err
	}
	r.st.syncStores(set)
	r.rules.Store(set)
	rec.hangUpFn = func(c *conn) { r.cleanup(c, "server disconnect") }
	return &Local{r: r, rec: rec}, nil
}

// SetClock fixes the time expressions see (now_ms(), unix()), so tests of
// time-stamped payloads are exact.
func (l *Local) SetClock(t time.Time) {
	l.r.st.fixedNow.Store(&t)
}

// Advance moves the clock forward by d, fixing it first at the real time
// if no test fixed it, so rate limits refill exactly as much as a test says.
func (l *Local) Advance(d time.Duration) {
	t := l.r.st.now().Add(d)
	l.r.st.fixedNow.Store(&t)
}

// Rules returns the compiled rules.
func (l *Local) Rules() *rules.Set { return l.r.Rules() }

// Connect adds a socket with the given id and handshake, running the
// connect rules.
func (l *Local) Connect(id string, auth, query map[string]any) error {
	l.r.st.mu.RLock()
	taken := l.r.st.connected(id)
	l.r.st.mu.RUnlock()
	if taken {
		return fmt.Errorf("socket %q is already connected", id)
	}
	if auth == nil {
		auth = map[string]any{}
	}
	claims, ref := l.r.authenticate(l.r.Rules(), id, auth, query)
	if ref != nil {
		return &ConnectRefused{Message: ref.Message, Data: ref.Data}
	}
	l.r.connected(&conn{id: id, data: map[string]any{}, auth: auth, query: query, claims: claims})
	return nil
}

// ConnectRefused is Connect's error when the auth: section refuses the
// socket: what a socket.io client would get as connect_error.
type ConnectRefused struct {
	Message string
	Data    any
}

// Error says the connection was refused and why.
func (e *ConnectRefused) Error() string { return "connection refused: " + e.Message }

// Send delivers one event from socket id. With withAck the event carries
// an acknowledgement callback, and the first answer is returned.
func (l *Local) Send(id, event string, args []any, withAck bool) (ack any, acked bool, err error) {
	c := l.conn(id)
	if c == nil {
		return nil, false, fmt.Errorf("socket %q is not connected", id)
	}
	var reply func(any)
	if withAck {
		reply = func(v any) {
			if !acked {
				ack, acked = v, true
			}
		}
	}
	// The router may stamp a payload in place (the relay's source), as it
	// owns what it decodes; a test's value must stay as the test wrote it.
	args = slices.Clone(args)
	for i, a := range args {
		if m, ok := a.(map[string]any); ok {
			args[i] = maps.Clone(m)
		}
	}
	l.r.handle(c, &sio.Event{Name: event, Args: args, Reply: reply})
	return ack, acked, nil
}

// Disconnect closes socket id as a client disconnect would: peer-left,
// the disconnecting rules, then cleanup.
func (l *Local) Disconnect(id, reason string) error {
	c := l.conn(id)
	if c == nil {
		return fmt.Errorf("socket %q is not connected", id)
	}
	c.closing.Store(true)
	l.r.cleanup(c, reason)
	return nil
}

// Connected reports whether socket id is connected (a rule may have
// disconnected it).
func (l *Local) Connected(id string) bool { return l.conn(id) != nil }

func (l *Local) conn(id string) *conn {
	l.r.st.mu.RLock()
	defer l.r.st.mu.RUnlock()
	return l.r.st.socket(id)
}

// Deliveries returns what was delivered since the last call, in order.
func (l *Local) Deliveries() []Delivery {
	l.rec.mu.Lock()
	defer l.rec.mu.Unlock()
	out := l.rec.log
	l.rec.log = nil
	return out
}

// Store returns a copy of a store's entries, or nil if there is no such
// store.
func (l *Local) Store(name string) map[string]any {
	l.r.st.mu.RLock()
	defer l.r.st.mu.RUnlock()
	return l.r.st.storeEntries(name)
}

// SocketData returns a copy of socket id's data, or nil.
func (l *Local) SocketData(id string) map[string]any {
	l.r.st.mu.RLock()
	defer l.r.st.mu.RUnlock()
	if c := l.r.st.socket(id); c != nil {
		return maps.Clone(c.data)
	}
	return nil
}

// Members returns the members of room in join order.
func (l *Local) Members(room string) []string {
	l.r.st.mu.RLock()
	defer l.r.st.mu.RUnlock()
	return host{l.r.st}.Members(room)
}

// recorder is the wire of Local: it resolves rooms from the router's own
// state, as the socket.io adapter would, and records each delivery.
type recorder struct {
	st       *state
	hangUpFn func(*conn)
	mu       sync.Mutex
	log      []Delivery
}

var _ wire = (*recorder)(nil)

// send runs with state.mu held (rules) or read-held (relay).
func (w *recorder) send(rooms []string, except string, event string, args []any) error {
	var to []string
	for _, room := range rooms {
		// Only application rooms, as on the server (libraryRoom): a room
		// named like a socket id is not that socket.
		to = append(to, w.st.members(room)...)
	}
	seen := map[string]bool{}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range to {
		c := w.st.socket(id)
		if id == except || seen[id] || c == nil || c.closing.Load() {
			continue
		}
		seen[id] = true
		w.log = append(w.log, Delivery{To: id, Event: event, Args: slices.Clone(args)})
	}
	return nil
}

func (w *recorder) sendTo(c *conn, event string, args []any) error {
	if c.closing.Load() {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.log = append(w.log, Delivery{To: c.id, Event: event, Args: slices.Clone(args)})
	return nil
}

func (*recorder) join(*conn, string)  {}
func (*recorder) leave(*conn, string) {}

func (w *recorder) hangUp(c *conn) {
	c.closing.Store(true)
	w.hangUpFn(c)
}
