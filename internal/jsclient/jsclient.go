package jsclient

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/npmdeps"
)

// DefaultTimeout bounds every wait that takes no explicit timeout (or a
// non-positive one): long enough for a loaded CI machine, short enough that a
// broken test fails instead of hanging until the go test deadline.
const DefaultTimeout = 5 * time.Second

// Event is one event the server sent to a client, in arrival order.
type Event struct {
	// Seq orders events across all clients of one Process, so a test can
	// assert that one peer heard something before another did.
	Seq  int64
	Name string
	// Args are decoded with encoding/json (numbers are float64); compare
	// them with Equal.
	Args []any
	// AckID is non-zero when the server asked for an acknowledgement;
	// answer it with Client.Reply.
	AckID int64
	// Offset is the packet offset a server with connection state recovery
	// appends to events without an ack; it is not in Args.
	Offset string
}

// String renders the event as `name [args as JSON]`, the form failure
// messages use, so it can be compared with what the server code emits.
func (e Event) String() string { return e.Name + " " + jsonString(e.Args) }

// ConnectError is what the client's connect_error listener saw. Middleware
// rejections carry the server's message and data; network failures have
// Type "TransportError".
type ConnectError struct {
	Message     string
	Data        any
	Type        string
	Description string
}

// Process is one Node driver process hosting any number of named clients.
// Sharing one process keeps tests fast (Node starts in ~100 ms) and lets
// Event.Seq order events across clients.
type Process struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *tailBuffer
	trace  bool
	ready  chan struct{}
	done   chan struct{} // closed once stdout ended and the process was reaped

	wmu sync.Mutex // one command line at a time on stdin

	mu       sync.Mutex
	nextID   int64
	pending  map[int64]chan message
	clients  map[string]*state
	stopping bool
	exitErr  error // valid once done is closed
}

// message is one line from the driver: a reply (OK set) or an event (Type set).
type message struct {
	Seq         int64  `json:"seq"`
	ID          *int64 `json:"id"`
	OK          *bool  `json:"ok"`
	Error       string `json:"error"`
	Type        string `json:"type"`
	Name        string `json:"name"`
	SID         string `json:"sid"`
	Event       string `json:"event"`
	Args        []any  `json:"args"`
	AckID       int64  `json:"ackId"`
	Message     string `json:"message"`
	Data        any    `json:"data"`
	ErrType     string `json:"errType"`
	Reason      string `json:"reason"`
	Description string `json:"description"`
	Transport   string `json:"transport"`
	Recovered   bool   `json:"recovered"`
	Offset      string `json:"offset"`
	Packet      string `json:"packet"`
}

// Start launches a driver process for the test and stops it in t.Cleanup,
// installing the npm dependencies first if needed. Set JSCLIENT_TRACE=1 to log
// every line exchanged with the driver.
func Start(t testing.TB) *Process {
	t.Helper()
	dir, err := nodeDir()
	if err != nil {
		t.Fatalf("jsclient: %v", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("jsclient: node is not on PATH (needed to run socket.io-client): %v", err)
	}
	if err := npmdeps.Ensure(dir); err != nil {
		t.Fatalf("jsclient: %v", err)
	}

	p := &Process{
		t:       t,
		stderr:  &tailBuffer{max: 64 << 10},
		trace:   os.Getenv("JSCLIENT_TRACE") != "",
		ready:   make(chan struct{}),
		done:    make(chan struct{}),
		pending: map[int64]chan message{},
		clients: map[string]*state{},
	}
	p.cmd = exec.Command(node, "driver.mjs")
	p.cmd.Dir = dir
	p.cmd.Stderr = p.stderr
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatalf("jsclient: %v", err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("jsclient: %v", err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("jsclient: start node: %v", err)
	}
	go p.read(stdout)
	t.Cleanup(p.stop)

	select {
	case <-p.ready:
	case <-p.done:
		t.Fatalf("jsclient: driver exited before it was ready%s", p.deathNote())
	case <-time.After(15 * time.Second):
		t.Fatalf("jsclient: driver not ready after 15s%s", p.deathNote())
	}
	return p
}

// read owns stdout and the final cmd.Wait, so there is exactly one place that
// learns the process is gone and wakes every waiter.
func (p *Process) read(stdout io.Reader) {
	r := bufio.NewReader(stdout) // no line-length limit, unlike bufio.Scanner
	for {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			p.dispatch(line)
		}
		if err != nil {
			break
		}
	}
	werr := p.cmd.Wait()

	if werr == nil {
		werr = errors.New("exited")
	}
	p.mu.Lock()
	p.exitErr = werr
	unexpected := !p.stopping
	p.pending = map[int64]chan message{}
	p.mu.Unlock()
	if unexpected { // before waking waiters, so their failure follows this one
		p.t.Errorf("jsclient: node driver exited unexpectedly: %v; stderr: %s", werr, strings.TrimSpace(p.stderr.String()))
	}
	close(p.done)
}

func (p *Process) dispatch(line []byte) {
	if p.trace {
		p.t.Logf("jsclient <- %s", bytes.TrimSpace(line))
	}
	var m message
	if err := json.Unmarshal(line, &m); err != nil {
		p.t.Logf("jsclient: ignoring non-JSON driver output: %q", line)
		return
	}
	if m.OK != nil {
		if m.ID == nil {
			p.t.Errorf("jsclient: driver rejected a command: %s", m.Error)
			return
		}
		p.mu.Lock()
		ch := p.pending[*m.ID]
		delete(p.pending, *m.ID)
		p.mu.Unlock()
		if ch != nil {
			ch <- m // buffered; the caller may already have given up
		}
		return
	}
	switch m.Type {
	case "ready":
		close(p.ready)
	case "error":
		p.t.Errorf("jsclient: driver error: %s", m.Error)
	default:
		p.mu.Lock()
		s := p.clients[m.Name]
		p.mu.Unlock()
		if s != nil {
			s.add(m)
		}
	}
}

func (p *Process) stop() {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	p.stdin.Close() // the driver disconnects its sockets and exits on EOF
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	if p.t.Failed() {
		if tail := p.stderr.String(); tail != "" {
			p.t.Logf("jsclient: node stderr:\n%s", tail)
		}
	}
}

// deathNote explains a failure caused by the driver being gone, if it is.
func (p *Process) deathNote() string {
	select {
	case <-p.done:
	default:
		return ""
	}
	p.mu.Lock()
	err := p.exitErr
	p.mu.Unlock()
	return fmt.Sprintf(" (node driver %v; stderr: %s)", err, strings.TrimSpace(p.stderr.String()))
}

// call sends one command and waits for its reply, so driver-side errors
// surface at the line of the test that caused them.
func (p *Process) call(cmd map[string]any, timeout time.Duration) (message, error) {
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		return message{}, errors.New("jsclient process already stopped")
	}
	p.nextID++
	id := p.nextID
	ch := make(chan message, 1)
	p.pending[id] = ch
	p.mu.Unlock()
	forget := func() {
		p.mu.Lock()
		delete(p.pending, id)
		p.mu.Unlock()
	}

	cmd["id"] = id
	b, err := json.Marshal(cmd)
	if err != nil {
		forget()
		return message{}, fmt.Errorf("encode command: %w", err)
	}
	if p.trace {
		p.t.Logf("jsclient -> %s", b)
	}
	p.wmu.Lock()
	_, err = p.stdin.Write(append(b, '\n'))
	p.wmu.Unlock()
	if err != nil {
		forget()
		return message{}, fmt.Errorf("write to driver: %v%s", err, p.deathNote())
	}

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var m message
	select {
	case m = <-ch:
	case <-timer.C:
		forget()
		return message{}, fmt.Errorf("no reply from driver within %v", timeout)
	case <-p.done:
		select {
		case m = <-ch:
		default:
			return message{}, fmt.Errorf("driver gone%s", p.deathNote())
		}
	}
	if !*m.OK {
		return m, errors.New(m.Error)
	}
	return m, nil
}

// Connect creates a client named name (unique among open clients of p) with
// io(url, opts) and returns at once; use WaitConnected or WaitConnectError to
// learn the outcome. opts go to socket.io-client unchanged (transports, auth,
// query, extraHeaders, reconnection, ...); forceNew defaults to true so every
// client gets its own connection.
func (p *Process) Connect(name, url string, opts map[string]any) *Client {
	p.t.Helper()
	s := &state{changed: make(chan struct{})}
	p.mu.Lock()
	_, dup := p.clients[name]
	if !dup {
		p.clients[name] = s // before the command, so no event can be missed
	}
	p.mu.Unlock()
	if dup {
		p.t.Fatalf("jsclient: client %q is already open", name)
	}
	c := &Client{p: p, name: name, t: p.t, s: s}
	if _, err := p.call(map[string]any{"cmd": "connect", "name": name, "url": url, "opts": opts}, DefaultTimeout); err != nil {
		p.forget(name, s)
		p.t.Fatalf("jsclient: connect %s to %s: %v", name, url, err)
	}
	return c
}

func (p *Process) forget(name string, s *state) {
	p.mu.Lock()
	if p.clients[name] == s {
		delete(p.clients, name)
	}
	p.mu.Unlock()
}

// Client is one socket.io-client socket inside a Process. Its methods are
// safe for concurrent use; the failing ones report to the bound testing.TB.
type Client struct {
	p    *Process
	name string
	t    testing.TB
	s    *state
}

// state is shared by a Client and its WithT copies.
type state struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change: a broadcast

	sid       string
	connected bool
	recovered bool // socket.recovered at the last connect
	closed    bool
	refusal   *ConnectError // last non-transport connect_error, until a connect

	events   []Event
	read     int
	errs     []ConnectError
	errsRead int
	reasons  []string
	discRead int
	changes  []Change
	dropped  []Dropped
}

// Dropped is a packet the client discarded itself while it counted itself
// connected (written to a WebSocket already closing, or left in its
// engine's write buffer at a transport close): no server ever saw it.
type Dropped struct {
	At     time.Time // when the driver reported it
	Packet string    // the socket.io packet, "2[...]" for an event
}

// Change is one connect or disconnect of a client, stamped when the driver
// reported it, so that a test can tell how long a client was without its
// server (a node restart, a network cut) and whether it got its session back.
type Change struct {
	At        time.Time
	Connected bool   // a connect; false for a disconnect
	SID       string // the socket id after a connect
	Recovered bool   // socket.recovered after a connect
	Reason    string // a disconnect's reason
}

func (s *state) add(m message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch m.Type {
	case "connect":
		s.sid, s.connected, s.refusal, s.recovered = m.SID, true, nil, m.Recovered
		s.changes = append(s.changes, Change{At: time.Now(), Connected: true, SID: m.SID, Recovered: m.Recovered})
	case "connect_error":
		e := ConnectError{Message: m.Message, Data: m.Data, Type: m.ErrType, Description: m.Description}
		s.errs = append(s.errs, e)
		s.connected = false
		if e.Type != "TransportError" {
			s.refusal = &e
		}
	case "disconnect":
		s.sid, s.connected = "", false
		s.reasons = append(s.reasons, m.Reason)
		s.changes = append(s.changes, Change{At: time.Now(), Reason: m.Reason})
	case "dropped":
		s.dropped = append(s.dropped, Dropped{At: time.Now(), Packet: m.Packet})
		return
	case "event":
		args := m.Args
		if args == nil {
			args = []any{}
		}
		s.events = append(s.events, Event{Seq: m.Seq, Name: m.Event, Args: args, AckID: m.AckID, Offset: m.Offset})
	default:
		return
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// Name returns the name the client was connected with.
func (c *Client) Name() string { return c.name }

// WithT returns the same client reporting failures to t, for use inside a
// subtest or with a recording testing.TB.
func (c *Client) WithT(t testing.TB) *Client {
	cc := *c
	cc.t = t
	return &cc
}

// wait blocks until cond (called with s.mu held) holds, the timeout passes or
// the driver dies, and reports whether cond held.
func (c *Client) wait(timeout time.Duration, cond func() bool) bool {
	timer := time.NewTimer(orDefault(timeout))
	defer timer.Stop()
	for {
		c.s.mu.Lock()
		ok := cond()
		ch := c.s.changed
		c.s.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			return false
		case <-c.p.done:
			// Every line was dispatched before done closed: look once more.
			c.s.mu.Lock()
			defer c.s.mu.Unlock()
			return cond()
		}
	}
}

func (c *Client) fatalf(t testing.TB, format string, args ...any) {
	t.Helper()
	t.Fatalf("jsclient %s: "+format+"%s", append(append([]any{c.name}, args...), c.p.deathNote())...)
}

// ID returns the current socket id, or "" while not connected.
func (c *Client) ID() string {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.s.sid
}

// Recovered reports socket.recovered as of the last connect: whether the
// server restored the session (connection state recovery) after a drop.
func (c *Client) Recovered() bool {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.s.recovered
}

// Connected reports whether the last lifecycle event was a connect.
func (c *Client) Connected() bool {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.s.connected
}

// Dropped returns the packets the client discarded itself so far (see
// Dropped).
func (c *Client) Dropped() []Dropped {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return append([]Dropped(nil), c.s.dropped...)
}

// Changes returns every connect and disconnect of the client so far, in
// order.
func (c *Client) Changes() []Change {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return append([]Change(nil), c.s.changes...)
}

// WaitConnected waits for the socket to connect and returns its id. It fails
// at once if the server refused the connection (middleware error), but keeps
// waiting through transport errors, which the client retries.
func (c *Client) WaitConnected() string {
	c.t.Helper()
	var sid string
	var connected bool
	var refusal *ConnectError
	ok := c.wait(DefaultTimeout, func() bool {
		sid, connected, refusal = c.s.sid, c.s.connected, c.s.refusal
		return connected || refusal != nil
	})
	switch {
	case !connected && refusal != nil:
		c.fatalf(c.t, "connection refused: %q data=%s", refusal.Message, jsonString(refusal.Data))
	case !ok:
		c.s.mu.Lock()
		errs := append([]ConnectError(nil), c.s.errs...)
		c.s.mu.Unlock()
		c.fatalf(c.t, "not connected after %v; connect errors: %+v", DefaultTimeout, errs)
	}
	return sid
}

// WaitConnectError returns the next connect_error not yet returned, waiting
// for it if needed, so tests can check a refusal's message and data.
func (c *Client) WaitConnectError() ConnectError {
	c.t.Helper()
	return nextOf(c, "connect_error", &c.s.errs, &c.s.errsRead)
}

// WaitDisconnect returns the reason of the next disconnect not yet returned
// ("io server disconnect", "transport close", ...), waiting for it if needed.
func (c *Client) WaitDisconnect() string {
	c.t.Helper()
	return nextOf(c, "disconnect", &c.s.reasons, &c.s.discRead)
}

// nextOf returns the first entry of list past *read, waiting for the driver
// to append one, and moves *read past it, so each entry is returned once.
func nextOf[T any](c *Client, what string, list *[]T, read *int) T {
	c.t.Helper()
	var v T
	ok := c.wait(DefaultTimeout, func() bool {
		if *read < len(*list) {
			v = (*list)[*read]
			*read++
			return true
		}
		return false
	})
	if !ok {
		c.fatalf(c.t, "no %s within %v (connected=%v)", what, DefaultTimeout, c.Connected())
	}
	return v
}

// Emit sends an event without an ack. It returns once the client has queued
// it, so emits from different clients of one Process keep their order.
func (c *Client) Emit(event string, args ...any) {
	c.t.Helper()
	if _, err := c.p.call(c.emitCmd(event, args), DefaultTimeout); err != nil {
		c.fatalf(c.t, "emit %s %s: %v", event, jsonString(args), err)
	}
}

// TryEmit is Emit returning the error instead of failing, for emitting off
// the test goroutine (a steady stream of messages beside the test's steps).
func (c *Client) TryEmit(event string, args ...any) error {
	_, err := c.p.call(c.emitCmd(event, args), DefaultTimeout)
	return err
}

func (c *Client) emitCmd(event string, args []any) map[string]any {
	if args == nil {
		args = []any{}
	}
	return map[string]any{"cmd": "emit", "name": c.name, "event": event, "args": args}
}

// EmitWithAck sends an event with an ack callback and returns the arguments
// the server acked with, failing the test if no ack came within DefaultTimeout.
func (c *Client) EmitWithAck(event string, args ...any) []any {
	c.t.Helper()
	res, err := c.EmitWithAckTimeout(DefaultTimeout, event, args...)
	if err != nil {
		c.fatalf(c.t, "emit %s %s with ack: %v", event, jsonString(args), err)
	}
	return res
}

// EmitWithAckTimeout is EmitWithAck returning the error instead of failing,
// for tests that expect no ack and for use off the test goroutine.
func (c *Client) EmitWithAckTimeout(timeout time.Duration, event string, args ...any) ([]any, error) {
	timeout = orDefault(timeout)
	cmd := c.emitCmd(event, args)
	cmd["ack"] = true
	cmd["timeout"] = timeout.Milliseconds()
	m, err := c.p.call(cmd, timeout+2*time.Second)
	if err != nil {
		return nil, err
	}
	if m.Args == nil {
		m.Args = []any{}
	}
	return m.Args, nil
}

// Reply answers an event the server sent with an ack callback.
func (c *Client) Reply(ev Event, args ...any) {
	c.t.Helper()
	if ev.AckID == 0 {
		c.fatalf(c.t, "reply to %s: the server did not ask for an ack", ev)
	}
	if args == nil {
		args = []any{}
	}
	if _, err := c.p.call(map[string]any{"cmd": "reply", "name": c.name, "ackId": ev.AckID, "args": args}, DefaultTimeout); err != nil {
		c.fatalf(c.t, "reply to %s: %v", ev, err)
	}
}

// Transport returns the engine's current transport ("polling", "websocket"),
// or "" before the first connection attempt.
func (c *Client) Transport() string {
	c.t.Helper()
	m, err := c.p.call(map[string]any{"cmd": "transport", "name": c.name}, DefaultTimeout)
	if err != nil {
		c.fatalf(c.t, "transport: %v", err)
	}
	return m.Transport
}

// WaitTransport waits until the engine uses the named transport, e.g.
// "websocket" after an upgrade from polling.
func (c *Client) WaitTransport(name string) {
	c.t.Helper()
	cmd := map[string]any{"cmd": "transport", "name": c.name, "wait": name, "timeout": DefaultTimeout.Milliseconds()}
	if _, err := c.p.call(cmd, DefaultTimeout+2*time.Second); err != nil {
		c.fatalf(c.t, "wait for transport %s: %v", name, err)
	}
}

// Close disconnects the socket the polite way (the server sees "client
// namespace disconnect") and frees the name for reuse.
func (c *Client) Close() { c.close(false) }

// Drop closes the connection without a DISCONNECT packet and without
// reconnecting, so the server sees "transport close" as when a tab dies. The
// client reports "forced close"; writes already in flight are sent first.
func (c *Client) Drop() { c.close(true) }

func (c *Client) close(abrupt bool) {
	c.t.Helper()
	c.s.mu.Lock()
	closed := c.s.closed
	c.s.closed = true
	c.s.mu.Unlock()
	if closed {
		return
	}
	_, err := c.p.call(map[string]any{"cmd": "close", "name": c.name, "abrupt": abrupt}, DefaultTimeout)
	c.p.forget(c.name, c.s)
	if err != nil && c.p.deathNote() == "" && !c.p.isStopping() {
		c.fatalf(c.t, "close: %v", err)
	}
}

func (p *Process) isStopping() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopping
}

// TryNext returns the next unread event, waiting up to timeout; it never
// fails the test, so it is the form to use off the test goroutine.
func (c *Client) TryNext(timeout time.Duration) (Event, bool) {
	var ev Event
	ok := c.wait(timeout, func() bool {
		if c.s.read < len(c.s.events) {
			ev = c.s.events[c.s.read]
			c.s.read++
			return true
		}
		return false
	})
	return ev, ok
}

// Next returns the next unread event, failing the test if none arrives
// within timeout.
func (c *Client) Next(timeout time.Duration) Event {
	c.t.Helper()
	ev, ok := c.TryNext(timeout)
	if !ok {
		c.fatalf(c.t, "no event within %v; received so far: %s", orDefault(timeout), c.history())
	}
	return ev
}

// Expect reads the next unread event and fails t unless it is name with
// exactly wantArgs (compared with Equal; no wantArgs means no arguments).
// It returns the event so tests can inspect it further.
func (c *Client) Expect(t testing.TB, name string, wantArgs ...any) Event {
	t.Helper()
	want := Event{Name: name, Args: append([]any{}, wantArgs...)}
	ev, ok := c.TryNext(DefaultTimeout)
	if !ok {
		c.fatalf(t, "want %s, nothing arrived within %v; received so far: %s", want, DefaultTimeout, c.history())
	}
	if ev.Name != name || !Equal(ev.Args, want.Args) {
		c.fatalf(t, "want %s\n\tgot  %s\n\tunread after it: %s", want, ev, c.unread())
	}
	return ev
}

// WaitFor discards unread events until one named name arrives and returns
// it, for tests that care about one event among chatter.
func (c *Client) WaitFor(name string, timeout time.Duration) Event {
	c.t.Helper()
	var ev Event
	var skipped []Event
	ok := c.wait(timeout, func() bool {
		for c.s.read < len(c.s.events) {
			e := c.s.events[c.s.read]
			c.s.read++
			if e.Name == name {
				ev = e
				return true
			}
			skipped = append(skipped, e)
		}
		return false
	})
	if !ok {
		c.fatalf(c.t, "no %s within %v; skipped: %s", name, orDefault(timeout), eventList(skipped))
	}
	return ev
}

// ExpectNothing fails the test if an unread event is present or arrives
// within d, e.g. to prove that peers in other rooms heard nothing.
func (c *Client) ExpectNothing(d time.Duration) {
	c.t.Helper()
	if c.wait(d, func() bool { return c.s.read < len(c.s.events) }) {
		c.fatalf(c.t, "want no events for %v, got: %s", d, c.unread())
	}
}

// Received returns every event received so far, read or not.
func (c *Client) Received() []Event {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return append([]Event(nil), c.s.events...)
}

func (c *Client) unread() string {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return eventList(c.s.events[c.s.read:])
}

func (c *Client) history() string { return eventList(c.Received()) }

func eventList(evs []Event) string {
	if len(evs) == 0 {
		return "(none)"
	}
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "\n\t\t#%d %s", e.Seq, e)
	}
	return b.String()
}

// Equal reports whether a and b are equal after a JSON round trip, so
// expectations can be written with ints, structs or typed maps while received
// values hold float64 and map[string]any.
func Equal(a, b any) bool {
	na, err := normalize(a)
	if err != nil {
		return false
	}
	nb, err := normalize(b)
	if err != nil {
		return false
	}
	return reflect.DeepEqual(na, nb)
}

func normalize(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(b, &out)
	return out, err
}

func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(b)
}

func orDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultTimeout
	}
	return d
}

// tailBuffer keeps the last max bytes of the driver's stderr: enough to
// explain a crash without growing without bound in long tests.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if over := len(w.b) - w.max; over > 0 {
		w.b = append([]byte(nil), w.b[over:]...)
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}

// nodeDir finds node/ next to this source file, so tests in any package (with
// any working directory) use the same driver and node_modules.
func nodeDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the jsclient source directory")
	}
	dir := filepath.Join(filepath.Dir(file), "node")
	if _, err := os.Stat(filepath.Join(dir, "driver.mjs")); err != nil {
		return "", fmt.Errorf("driver not found (was the test built with -trimpath?): %v", err)
	}
	return dir, nil
}
