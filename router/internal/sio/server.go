// Package sio is the hardened socket.io v4 server that rtcio-router runs
// on: zishang520/socket.io v3.0.6 with every guard that library is missing
// (docs/socketio-library.md), behind a typed API. It knows nothing of
// rtc.io: a Handler decides handshakes, learns of sockets, handles their
// events and hears of their end; Socket and Server send.
//
// What it adds to the library: a strict packet parser that decodes each
// frame once and refuses anything malformed; pass-through events whose
// object argument is forwarded as the client wrote it (RawObject); an
// encoder that writes the client's JSON verbatim (RawJSON); its own
// WebSocket transport (no per-message deflate, writes that never block an
// emitter, events handled on the reader without the library's task queue);
// an adapter whose membership changes are atomic; origin checks that
// refuse instead of only omitting CORS headers; size and time bounds on
// HTTP requests (polling bodies, handshakes, long polls at shutdown); per
// connection caps on queued inbound events and unsent outbound packets;
// application rooms kept apart from socket ids; connection state recovery
// with the sessions kept by the caller's SessionStore instead of the
// process's memory, so that they can outlive it (sessions.go).
package sio

// This file builds the server and guards its HTTP entry point.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// DefaultMaxOutgoingBytes is a sane Config.MaxOutgoingBytes: 4096 relayed
// 64 KiB messages would otherwise be 256 MiB for one stuck client.
const DefaultMaxOutgoingBytes = 8 << 20

// HTTP bounds that are not configured.
const (
	// maxHandshakes caps the handshakes (requests without a session id)
	// served at once; past it a handshake gets 503 and the client retries.
	// A handshake holds no body and finishes in well under a millisecond, so
	// 1024 in flight only happens under a flood, which it keeps from piling
	// up goroutines and engine state.
	maxHandshakes = 1024
	// readHeaderTimeout bounds how long a connection may take to send a
	// request's headers (net/http's ReadHeaderTimeout).
	readHeaderTimeout = 10 * time.Second
)

// Config are the server's settings. The defaults belong to whoever
// configures the server (rtcio-router's are in its rules file's schema),
// so every number is required: New refuses a zero.
type Config struct {
	// Path is where socket.io is served; requests to any other path get 404.
	// A missing leading or trailing slash is added.
	Path string
	// Origins is the CORS allow-list, compared case-insensitively with the
	// Origin header. Empty, or any entry "*", allows every origin. Requests
	// without an Origin header (non-browser clients) are always allowed: the
	// check exists to stop other web sites from using a visitor's browser.
	Origins []string
	// MaxPayload is the largest message in bytes (engine maxHttpBufferSize):
	// the WebSocket read limit and the polling POST body cap (declared or
	// chunked).
	MaxPayload int64
	// PingInterval and PingTimeout are the engine.io heartbeat. A peer that
	// does not answer a ping within PingTimeout is dropped.
	PingInterval time.Duration
	PingTimeout  time.Duration
	// MaxOutgoing is how many packets may wait to be written to one
	// connection before it is dropped as a slow consumer.
	MaxOutgoing int
	// MaxOutgoingBytes caps the same backlog in payload bytes
	// (DefaultMaxOutgoingBytes is a sane value).
	MaxOutgoingBytes int64
	// MaxPending is how many inbound events of one connection may wait to
	// be handled before the connection is closed: a client that emits
	// faster than the server handles cannot grow the per-socket task queue
	// without bound.
	MaxPending int
	// Recovery turns on connection state recovery with this window; 0 is
	// off.
	Recovery time.Duration
	// Sessions, with Recovery on, keeps the sessions and the events sent
	// to them outside the process, so that a client may recover on another
	// server (sessions.go); nil keeps them in the library's memory.
	Sessions SessionStore
	// LeanWebSocket serves clients that open a WebSocket straight away
	// (no polling first) without the library's per-connection objects or
	// goroutines (lean.go): 5-6 KiB of RSS per idle socket instead of
	// 30-34 (bench/memidle, 10,000 sockets). Off when Recovery is on, and
	// where epoll is missing.
	LeanWebSocket bool
	// PassThrough names the events whose single object argument is kept
	// as the client's JSON (Event.Object) instead of being decoded: a
	// server that reads a member or two of a large object and forwards it
	// saves decoding and encoding the rest.
	PassThrough []string
}

// normalized returns c with Path as "/x/" and the origins trimmed, or an
// error naming a setting that is missing.
func (c Config) normalized() (Config, error) {
	if c.Path = strings.Trim(c.Path, "/"); c.Path == "" {
		return c, errors.New("sio: Path is required")
	}
	c.Path = "/" + c.Path + "/"
	for name, v := range map[string]int64{
		"MaxPayload": c.MaxPayload, "PingInterval": int64(c.PingInterval), "PingTimeout": int64(c.PingTimeout),
		"MaxOutgoing": int64(c.MaxOutgoing), "MaxOutgoingBytes": c.MaxOutgoingBytes, "MaxPending": int64(c.MaxPending),
	} {
		if v <= 0 {
			return c, fmt.Errorf("sio: %s must be positive, got %d", name, v)
		}
	}
	if c.Recovery < 0 {
		return c, fmt.Errorf("sio: Recovery must not be negative, got %v", c.Recovery)
	}
	// An Origin header is scheme://host[:port] with no path: "https://a.b/"
	// in the config would never match, so trailing slashes are dropped.
	origins := make([]string, 0, len(c.Origins))
	for _, o := range c.Origins {
		if o = strings.TrimRight(strings.TrimSpace(o), "/"); o != "" {
			origins = append(origins, o)
		}
	}
	c.Origins = origins
	return c, nil
}

// anyOrigin reports whether the allow-list admits every origin.
func (c Config) anyOrigin() bool {
	if len(c.Origins) == 0 {
		return true
	}
	for _, o := range c.Origins {
		if o == "*" {
			return true
		}
	}
	return false
}

// errOriginNotAllowed is returned from AllowRequest; the engine turns it into
// 403 {"code":4,"message":"origin not allowed"} (polling) or 400 (WebSocket).
var errOriginNotAllowed = errors.New("origin not allowed")

// Server is the hardened socket.io server. It is an http.Handler for
// Config.Path (polling and WebSocket).
//
// Room membership in the library (Socket.Join/Leave, disconnect cleanup)
// goes through roomAdapter, which makes each change atomic. Per engine
// connection the server keeps a connGuard: a connect gate (events sent
// right after CONNECT no longer close the connection), the MaxPending
// inbound cap and the MaxOutgoing/MaxOutgoingBytes slow-consumer cap (see
// guard.go).
type Server struct {
	cfg Config
	log *slog.Logger
	h   Handler

	// io is the library's socket.io server.
	io *socket.Server
	// handler serves cfg.Path (polling and WebSocket) with the HTTP guards.
	handler http.Handler

	engine http.Handler // the engine.io handler wrapped by handler
	guards sync.Map     // engine session id -> *connGuard
	// latest maps a socket id to its newest Socket, for recoveries
	// (awaitOldCleanup).
	latest sync.Map
	// replayed maps the id of a socket recovered from Config.Sessions to
	// the offset it was replayed up to (Socket.ReplayedUpTo).
	replayed sync.Map // string -> string
	// namespaces maps the name of each namespace served with Namespace to
	// its Handler.
	namespaces sync.Map // string -> Handler

	// passThrough are the Config.PassThrough events.
	passThrough []passThroughEvent

	// handshakes holds one token per handshake being served (maxHandshakes).
	handshakes chan struct{}

	// inflight are the polling requests that close must end itself, because
	// nothing in the library would end them soon enough for a shutdown:
	// long-poll GETs and POST bodies still being read. closing is set once,
	// by Close. Both under inflightMu.
	inflightMu sync.Mutex
	inflight   map[*inflightReq]struct{}
	closing    bool
	closeOnce  sync.Once

	// stats are the running totals behind Stats (stats.go).
	stats stats

	// lean serves fresh WebSocket sessions without the library's objects
	// (lean.go); nil when Config.LeanWebSocket is off or cannot apply.
	lean *leanServer

	// beforeGhostCheck, set by tests only, runs in onConnection just
	// before the ghost check.
	beforeGhostCheck func(*Socket)
}

// New builds the server described by cfg, on top of h. log receives
// refused connections and dropped clients; nil discards.
func New(cfg Config, h Handler, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if h == nil {
		return nil, errors.New("sio: a Handler is required")
	}
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	t := &Server{cfg: cfg, log: log, h: h,
		handshakes: make(chan struct{}, maxHandshakes),
		inflight:   map[*inflightReq]struct{}{},
	}
	for _, name := range cfg.PassThrough {
		t.passThrough = append(t.passThrough, newPassThrough(name))
	}

	opts := socket.DefaultServerOptions()
	opts.SetPath(cfg.Path)
	opts.SetServeClient(false)
	opts.SetPingInterval(cfg.PingInterval)
	opts.SetPingTimeout(cfg.PingTimeout)
	opts.SetMaxHttpBufferSize(cfg.MaxPayload)
	// No PerMessageDeflate: the upgrader then never negotiates compression
	// (serveHTTP also strips the client's offer), and wsTransport writes
	// every frame itself, broadcasts' pre-encoded ones included.
	opts.SetPerMessageDeflate(nil)
	opts.SetCors(t.corsOptions())
	opts.SetAllowRequest(t.allowRequest)
	opts.SetParser(&wireParser{log: log, passThrough: t.passThrough})
	opts.SetTransports(types.NewSet[engine.TransportCtor](engine.Polling,
		wsTransportCtor{events: t, writeTimeout: cfg.PingTimeout}))
	if cfg.Recovery > 0 {
		csr := socket.DefaultConnectionStateRecovery()
		csr.SetMaxDisconnectionDuration(cfg.Recovery.Milliseconds())
		// The library fills these defaults in only when it picks the
		// adapter itself, which it does not here. Middlewares run again on
		// a recovery (the library's default skips them): Admit must see
		// the reconnecting client, and a recovered socket then reaches
		// the "connection" handler through its task queue, as a new one
		// does, so its first events cannot overtake it.
		csr.SetSkipMiddlewares(false)
		opts.SetConnectionStateRecovery(csr)
	}
	b := roomAdapterBuilder{sessions: cfg.Recovery > 0, t: t}
	if cfg.Recovery > 0 && cfg.Sessions != nil {
		b.sessions, b.store = false, cfg.Sessions
	}
	opts.SetAdapter(b)

	t.io = socket.NewServer(nil, opts)
	t.engine = t.io.ServeHandler(nil)
	// Registered after socket.Server's own listener, so the socket.io Client
	// (and its decoder) exists when the guards attach, and before the engine
	// lets the transport read (v3.0.6 grants read permission only after the
	// "connection" event returns), so no packet is missed.
	_ = t.io.Engine().On("connection", t.onEngineConnection)
	// First "connection" listener of every namespace: settles the connect
	// gate (see connGuard.awaitConnect) after the Handler's Connect.
	_ = t.io.On("connection", t.onSocketConnection)
	_ = t.io.On("new_namespace", t.onNewNamespace)
	t.io.Use(t.admit)
	_ = t.io.On("connection", t.onConnection)
	if cfg.LeanWebSocket && cfg.Recovery == 0 {
		if t.lean, err = newLeanServer(t); err != nil {
			log.Info("WebSocket sessions served by the library", "reason", err)
		}
	}
	t.handler = http.HandlerFunc(t.serveHTTP)
	return t, nil
}

// ServeHTTP serves Config.Path, see serveHTTP.
func (t *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { t.handler.ServeHTTP(w, r) }

// Path is where the server is served ("/x/").
func (t *Server) Path() string { return t.cfg.Path }

// Broadcast sends an event to every socket in the application rooms named,
// each once, except the socket whose id is except ("" for none).
func (t *Server) Broadcast(rooms []string, except string, event string, args ...any) error {
	to := make([]socket.Room, len(rooms))
	for i, r := range rooms {
		to[i] = libraryRoom(r)
	}
	op := t.io.To(to...)
	if except != "" {
		op = op.Except(socket.Room(except))
	}
	err := op.Emit(event, args...)
	if t.lean != nil {
		aud := Audience{Rooms: rooms}
		if except != "" {
			aud.ExceptSockets = []string{except}
		}
		err = errors.Join(err, t.lean.send(aud, event, args))
	}
	return err
}

// Audience selects sockets for Send: the members of the application
// Rooms and the sockets whose ids are in Sockets (each once), minus the
// members of ExceptRooms and the sockets in ExceptSockets. Everyone
// selects every socket instead of Rooms and Sockets.
type Audience struct {
	Rooms, Sockets             []string
	ExceptRooms, ExceptSockets []string
	Everyone                   bool
}

// Send sends an event to an Audience: for deliveries that arrive from
// elsewhere (another node), where rooms and socket ids come by name.
func (t *Server) Send(to Audience, event string, args ...any) error {
	if !to.Everyone && len(to.Rooms) == 0 && len(to.Sockets) == 0 {
		return nil
	}
	rooms := make([]socket.Room, 0, len(to.Rooms)+len(to.Sockets))
	for _, r := range to.Rooms {
		rooms = append(rooms, libraryRoom(r))
	}
	for _, id := range to.Sockets {
		rooms = append(rooms, socket.Room(id))
	}
	except := make([]socket.Room, 0, len(to.ExceptRooms)+len(to.ExceptSockets))
	for _, r := range to.ExceptRooms {
		except = append(except, libraryRoom(r))
	}
	for _, id := range to.ExceptSockets {
		except = append(except, socket.Room(id))
	}
	op := t.io.To(rooms...)
	if len(except) > 0 {
		op = op.Except(except...)
	}
	err := op.Emit(event, args...)
	if t.lean != nil {
		err = errors.Join(err, t.lean.send(to, event, args))
	}
	return err
}

// corsOptions maps the allow-list onto the library's CORS middleware. With an
// explicit list the library also refuses WebSocket upgrades from other
// origins (gorilla CheckOrigin); "*" is sent without credentials so that a
// wildcard never reflects arbitrary origins together with cookies.
func (t *Server) corsOptions() *types.Cors {
	if t.cfg.anyOrigin() {
		return &types.Cors{Origin: "*"}
	}
	// []string is matched with strings.EqualFold by v3.0.6 (types/cors.go).
	return &types.Cors{Origin: append([]string(nil), t.cfg.Origins...), Credentials: true}
}

// originAllowed applies the allow-list to one Origin header value.
func (t *Server) originAllowed(origin string) bool {
	if origin == "" || t.cfg.anyOrigin() {
		return true
	}
	for _, o := range t.cfg.Origins {
		if strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// allowRequest runs for every handshake without a session id, polling and
// WebSocket alike (engine Verify). v3.0.6's CORS middleware only omits the
// Access-Control-Allow-Origin header for an unlisted origin and still answers
// the polling handshake with 200, so the refusal has to happen here.
func (t *Server) allowRequest(ctx *types.HttpContext) error {
	origin := ctx.Headers().Peek("Origin")
	if t.originAllowed(origin) {
		return nil
	}
	t.stats.refusedOrigin.Add(1)
	t.log.Debug("socket.io handshake refused", "reason", "origin not allowed",
		"origin", origin, "remote", ctx.Request().RemoteAddr)
	return errOriginNotAllowed
}

// serveHTTP is the guarded entry point: it adds what the engine lacks.
//
//   - Path: the engine checks none, so anything else gets 404.
//   - WebSocket: the client's permessage-deflate offer is removed, see below.
//   - Bodies: only a polling POST on an open session (sid) has one. A POST
//     without sid (a handshake must be a GET) or with an unknown one, and
//     any other request with a body, are refused before a byte of the body
//     is read, and the connection closed (refuseUnread): v3.0.6 would
//     otherwise read or wait for such bodies without a deadline (measured:
//     2,000 chunked POSTs without sid held 182 MB, all still open 45 s
//     later).
//   - Polling POST: the body is read here (readBody), whole, within the
//     body deadline, and handed to the engine with a known length. The
//     engine compares a declared Content-Length with maxHttpBufferSize (413)
//     but reads a chunked body (ContentLength -1) through io.LimitReader,
//     silently truncating it and decoding the fragment, and it reads without
//     any deadline. Answering chunked bodies with 411 would break the
//     library's own Go client, which always POSTs chunked (measured:
//     ContentLength -1, Transfer-Encoding chunked). Memory per request stays
//     at MaxPayload, as for a declared length.
//   - The engine's answer to a POST whose session it closes meanwhile is
//     corrected (postWriter): 429 only for a client a guard dropped.
//   - Handshakes: at most maxHandshakes at once, 503 past it.
//   - Long-poll GET: tracked, so that close can answer it (serveLongPoll).
func (t *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != t.cfg.Path && r.URL.Path != strings.TrimSuffix(t.cfg.Path, "/") {
		http.NotFound(w, r)
		return
	}
	// Never negotiate permessage-deflate. gorilla/websocket applies
	// SetReadLimit (MaxPayload) to the compressed bytes on the wire and
	// inflates without limit, and the engine reads each message whole into
	// memory: with compression negotiated, a 1 MiB frame of one repeated
	// character passed a 1 MiB limit as ~1 KiB, and a MaxPayload-sized frame
	// can inflate ~1000x. Without the offer the upgrader does not negotiate,
	// and a frame with RSV1 set is a protocol error that closes the connection.
	r.Header.Del("Sec-Websocket-Extensions")
	sid := r.URL.Query().Get("sid")
	switch {
	case r.Method == http.MethodPost:
		if sid == "" {
			// engine.io's own code and message for a POST handshake.
			refuseUnread(w, http.StatusBadRequest, "application/json", `{"code":2,"message":"Bad handshake method"}`)
			return
		}
		if _, ok := t.io.Engine().Clients().Load(sid); !ok {
			// What the engine answers, but before reading the body (as
			// engine.io does), so a made-up sid buys no reading at all.
			refuseUnread(w, http.StatusBadRequest, "application/json", `{"code":1,"message":"Session ID unknown"}`)
			return
		}
		if !t.readBody(w, r) {
			return
		}
		g, _ := t.guards.Load(sid)
		guard, _ := g.(*connGuard)
		t.engine.ServeHTTP(&postWriter{ResponseWriter: w, t: t, guard: guard}, r)
		return
	case r.ContentLength != 0:
		refuseUnread(w, http.StatusBadRequest, "application/json", `{"code":3,"message":"Bad request"}`)
		return
	}
	if sid == "" {
		select {
		case t.handshakes <- struct{}{}:
			defer func() { <-t.handshakes }()
		default:
			t.stats.refusedBusy.Add(1)
			t.log.Debug("socket.io handshake refused", "reason", "too many handshakes in flight",
				"max", maxHandshakes, "remote", r.RemoteAddr)
			w.Header().Set("Retry-After", "1")
			http.Error(w, "too many handshakes in progress", http.StatusServiceUnavailable)
			return
		}
	}
	if t.lean.wantsLean(r) {
		t.lean.accept(w, r)
		return
	}
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		t.engine.ServeHTTP(&releasingWriter{ResponseWriter: w}, r)
		return
	}
	if sid != "" && r.Method == http.MethodGet {
		t.serveLongPoll(w, r)
		return
	}
	t.engine.ServeHTTP(w, r)
}

// readBody reads a polling POST's body whole into r.Body, within the body
// deadline (PingTimeout from now: a peer that cannot deliver MaxPayload
// bytes in a heartbeat's time would miss its heartbeat too). It answers the
// request itself and reports false when the body is over MaxPayload (413),
// unreadable (400), cut by the deadline (408) or by close (503).
//
// The deadline is the connection's read deadline, set per request through
// http.ResponseController rather than http.Server.ReadTimeout: only a POST
// has a body to wait for, the deadline starts when the handler does (after
// the headers, which ReadHeaderTimeout bounds), and close can move it to
// now to cut the read. It is cleared as soon as the body has been read:
// net/http then watches the connection for a client hang-up (its background
// read), and a read deadline expiring during that read cancels the request
// context, which the engine takes as the client aborting the POST. (net/http
// clears it itself when that read starts; clearing it here does not depend
// on that.)
func (t *Server) readBody(w http.ResponseWriter, r *http.Request) bool {
	if r.ContentLength > t.cfg.MaxPayload {
		refuseUnread(w, http.StatusRequestEntityTooLarge, "text/plain; charset=utf-8", "payload too large")
		return false
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(t.cfg.PingTimeout))
	op := &inflightReq{rc: rc}
	t.track(op)
	body, err := io.ReadAll(io.LimitReader(r.Body, t.cfg.MaxPayload+1))
	cut := t.untrack(op)
	if err != nil {
		status, msg := http.StatusBadRequest, "unreadable body"
		var ne net.Error
		switch {
		case cut:
			status, msg = http.StatusServiceUnavailable, "server is shutting down"
		case errors.As(err, &ne) && ne.Timeout():
			status, msg = http.StatusRequestTimeout, "request body not received in time"
		}
		t.log.Debug("polling POST body refused", "status", status, "remote", r.RemoteAddr, "err", err)
		refuseUnread(w, status, "text/plain; charset=utf-8", msg)
		return false
	}
	if int64(len(body)) > t.cfg.MaxPayload {
		refuseUnread(w, http.StatusRequestEntityTooLarge, "text/plain; charset=utf-8", "payload too large")
		return false
	}
	_ = rc.SetReadDeadline(time.Time{})
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	return true
}

// refuseUnread answers without reading (the rest of) the request body and
// closes the connection. Why not simply answer: after the handler, net/http
// reads up to 256 KiB of an unread body to keep the connection, with
// whatever read deadline the connection has (none, outside readBody), so a
// peer that stops sending would hold the connection and its goroutine
// forever. The deadline in the past makes that read fail at once.
func refuseUnread(w http.ResponseWriter, status int, contentType, body string) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	h := w.Header()
	h.Set("Connection", "close")
	h.Set("Content-Type", contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// postWriter corrects the status v3.0.6 gives a polling POST whose session
// closes while the engine handles it (polling DoClose answers the pending
// POST with 429): that happens because of the POST's own content (a
// malformed packet, a packet for a namespace not connected), because a guard
// dropped the client, or because the server is closing. Only the guard's
// drop is a "too many" (MaxPending events, MaxOutgoing backlog); a bad
// packet is 400, as engine.io answers other bad requests, and a shutdown 503.
type postWriter struct {
	http.ResponseWriter
	t     *Server
	guard *connGuard // the session's guard when the request began, or nil
}

// WriteHeader maps the engine's 429, see postWriter.
func (w *postWriter) WriteHeader(status int) {
	if status == http.StatusTooManyRequests && (w.guard == nil || !w.guard.tripped.Load()) {
		status = http.StatusBadRequest
		if w.t.isClosing() {
			status = http.StatusServiceUnavailable
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach net/http's writer.
func (w *postWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// serveLongPoll hands a polling GET of a session to the engine with a
// context that close can cancel. v3.0.6 answers a pending long poll with a
// CLOSE packet when it closes the session, but only from an asynchronous
// write that gives up if anything about the request changed meanwhile;
// a poll it leaves unanswered keeps its connection active, and
// http.Server.Shutdown waits for it until its deadline ("http shutdown:
// context deadline exceeded"). After close, whatever poll the engine has
// not answered is cancelled and answered here with the CLOSE packet, so the
// client sees a transport close, and Shutdown finds the connection idle.
func (t *Server) serveLongPoll(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	pw := &pollWriter{ResponseWriter: w}
	op := &inflightReq{cancel: cancel}
	t.track(op)
	t.engine.ServeHTTP(pw, r.WithContext(ctx))
	// The engine returns only once its response is finished or given up
	// (HttpContext.Done), so nothing of the library writes to w after this.
	if t.untrack(op) && !pw.wrote.Load() && r.Context().Err() == nil {
		h := w.Header() // keeps the CORS headers the engine set
		h.Set("Content-Type", "text/plain; charset=UTF-8")
		h.Set("Content-Length", "1")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "1") // engine.io v4 CLOSE
	}
}

// pollWriter records whether the engine answered a long poll.
type pollWriter struct {
	http.ResponseWriter
	wrote atomic.Bool
}

// WriteHeader records the engine's answer.
func (w *pollWriter) WriteHeader(status int) {
	w.wrote.Store(true)
	w.ResponseWriter.WriteHeader(status)
}

// Write records the engine's answer.
func (w *pollWriter) Write(b []byte) (int, error) {
	w.wrote.Store(true)
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach net/http's writer.
func (w *pollWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// inflightReq is a request that close must end: a long poll (cancel) or a
// body being read (rc, whose read deadline close moves to now).
type inflightReq struct {
	cancel context.CancelFunc
	rc     *http.ResponseController
	cut    bool // close ended it; under inflightMu
}

// end cuts the request short. Called under inflightMu, and only before the
// request's untrack: its connection may serve another request afterwards,
// whose deadline must not be touched.
func (op *inflightReq) end() {
	op.cut = true
	if op.cancel != nil {
		op.cancel()
	}
	if op.rc != nil {
		_ = op.rc.SetReadDeadline(time.Now())
	}
}

// track registers op for close; once close has begun, op is ended at once.
func (t *Server) track(op *inflightReq) {
	t.inflightMu.Lock()
	defer t.inflightMu.Unlock()
	if t.closing {
		op.end()
		return
	}
	t.inflight[op] = struct{}{}
}

// untrack forgets op and reports whether close ended it.
func (t *Server) untrack(op *inflightReq) bool {
	t.inflightMu.Lock()
	defer t.inflightMu.Unlock()
	delete(t.inflight, op)
	return op.cut
}

// isClosing reports whether close has begun.
func (t *Server) isClosing() bool {
	t.inflightMu.Lock()
	defer t.inflightMu.Unlock()
	return t.closing
}

// ConfigureHTTP sets what srv needs to serve t safely:
//
//   - ReadHeaderTimeout (10s) bounds sending a request's headers.
//   - IdleTimeout is PingTimeout: a keep-alive connection with no request
//     for that long is closed.
//   - No WriteTimeout: a long-poll GET legitimately waits up to
//     PingInterval before its answer is written, which a write deadline
//     would cut. No ReadTimeout: the body deadline is per polling POST
//     instead (readBody), and no read deadline is ever set on a waiting GET
//     (net/http cancels the request of a connection whose read fails,
//     which ends the long poll). WebSocket connections are hijacked and
//     keep their own deadlines.
func (t *Server) ConfigureHTTP(srv *http.Server) {
	srv.ReadHeaderTimeout = readHeaderTimeout
	srv.IdleTimeout = t.cfg.PingTimeout
	srv.ReadTimeout = 0
	srv.WriteTimeout = 0
}

// Close closes every connection without a DISCONNECT packet, so clients
// see a transport close and reconnect, and closes the engine; then it ends
// the polling requests still open: long polls get the CLOSE packet
// (serveLongPoll), POST bodies still arriving are cut (503). It does not
// stop the caller's http.Server, but leaves it no active polling request
// to wait for. Calls after the first do nothing.
func (t *Server) Close() { t.closeOnce.Do(t.close) }

// HandOff closes every connection as Close does, but lets each WebSocket
// client finish first: it is sent a close frame, and what it had sent
// before it saw that frame is read and handled (see "Hand-off" in
// ws.go). Once every WebSocket has closed, or after bound, Close ends what
// is left (polling sessions, clients that did not answer). For a server
// whose sessions a SessionStore keeps: their clients recover elsewhere,
// and the events they sent while the server stopped are not lost. Events
// written to a socket during the hand-off are not sent: the store
// replays them.
func (t *Server) HandOff(bound time.Duration) {
	var gone []<-chan struct{}
	t.io.Engine().Clients().Range(func(_ string, c engine.Socket) bool {
		if w, ok := c.Transport().(*wsTransport); ok {
			gone = append(gone, w.handOff())
		}
		return true
	})
	timer := time.NewTimer(bound)
	defer timer.Stop()
wait:
	for _, ch := range gone {
		select {
		case <-ch:
		case <-timer.C:
			break wait
		}
	}
	t.Close()
}

func (t *Server) close() {
	t.inflightMu.Lock()
	t.closing = true
	t.inflightMu.Unlock()
	t.lean.close()
	t.io.Close(nil)
	t.inflightMu.Lock()
	for op := range t.inflight {
		op.end()
	}
	t.inflightMu.Unlock()
}

// releasingWriter lets go of net/http's response once the WebSocket upgrade
// has hijacked the connection. The engine keeps the handshake's writer for
// the life of the socket, and through it net/http's per-connection 4 KiB
// read and write buffers, which the WebSocket (with buffers of its own)
// never uses again: about 9 KiB of heap per idle socket, measured.
type releasingWriter struct {
	http.ResponseWriter
	hijacked bool
}

// Hijack hands the connection to the WebSocket and forgets the response.
func (w *releasingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
		w.ResponseWriter = hijackedWriter{}
	}
	return conn, rw, err
}

// Unwrap lets http.ResponseController reach the real writer (before the
// hijack).
func (w *releasingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// hijackedWriter answers like net/http's response after a hijack.
type hijackedWriter struct{}

func (hijackedWriter) Header() http.Header       { return http.Header{} }
func (hijackedWriter) Write([]byte) (int, error) { return 0, http.ErrHijacked }
func (hijackedWriter) WriteHeader(int)           {}
