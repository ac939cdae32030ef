package router

// This file builds the socket.io server that the dispatcher runs on, with every
// guard that zishang520/socket.io v3.0.6 is missing (see
// shared/notes/libraries.md): a strict packet parser, an adapter whose
// membership changes are atomic, origin checks that refuse instead of only
// omitting CORS headers, a size guard for chunked polling POSTs, and per
// connection caps on queued inbound events and unsent outbound packets.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// Defaults for transportConfig. They are sized for a signaling server: small
// JSON messages (SDP offers are the largest, a few KiB), many idle sockets.
const (
	defaultTransportPath    = "/socket.io/"
	defaultMaxPayload       = 64 << 10
	defaultPingInterval     = 25 * time.Second
	defaultPingTimeout      = 20 * time.Second
	defaultMaxOutgoing      = 4096
	defaultMaxOutgoingBytes = 8 << 20
	defaultMaxPending       = 1024
)

// transportConfig are the wire settings that come from rtcio.yaml. Zero values
// mean "use the default", so a partially filled config is always safe.
type transportConfig struct {
	// Path is where socket.io is served; requests to any other path get 404.
	// Default "/socket.io/". A missing leading or trailing slash is added.
	Path string
	// Origins is the CORS allow-list, compared case-insensitively with the
	// Origin header. Empty, or any entry "*", allows every origin. Requests
	// without an Origin header (non-browser clients) are always allowed: the
	// check exists to stop other web sites from using a visitor's browser.
	Origins []string
	// MaxPayload is the largest message in bytes (engine maxHttpBufferSize):
	// the WebSocket read limit and the polling POST body cap (declared or
	// chunked). Default 64 KiB.
	MaxPayload int64
	// PingInterval and PingTimeout are the engine.io heartbeat. A peer that
	// does not answer a ping within PingTimeout is dropped. Defaults 25s/20s.
	PingInterval time.Duration
	PingTimeout  time.Duration
	// MaxOutgoing is how many packets may wait in one connection's engine
	// write buffer (created but not yet handed to the transport) before the
	// connection is dropped as a slow consumer. Default 4096.
	MaxOutgoing int
	// MaxOutgoingBytes caps the same backlog in payload bytes, because 4096
	// relayed 64 KiB messages would be 256 MiB for one stuck client.
	// Default 8 MiB.
	MaxOutgoingBytes int64
	// MaxPending is how many inbound EVENT packets of one connection may be
	// decoded but not yet reported handled (transport.eventDone) before the
	// connection is closed: a client that emits faster than the server
	// handles cannot grow the per-socket task queue without bound.
	// Default 1024.
	MaxPending int
	// Recovery turns on the library's connection state recovery with this
	// window (ConnectionStateRecovery.MaxDisconnectionDuration); 0 is off.
	// See recovery.go for the router's side.
	Recovery time.Duration
}

// withDefaults returns c with every zero or invalid field replaced by its
// default and Path normalised to "/x/".
func (c transportConfig) withDefaults() transportConfig {
	if c.Path = strings.Trim(c.Path, "/"); c.Path == "" {
		c.Path = defaultTransportPath
	} else {
		c.Path = "/" + c.Path + "/"
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = defaultMaxPayload
	}
	if c.PingInterval <= 0 {
		c.PingInterval = defaultPingInterval
	}
	if c.PingTimeout <= 0 {
		c.PingTimeout = defaultPingTimeout
	}
	if c.MaxOutgoing <= 0 {
		c.MaxOutgoing = defaultMaxOutgoing
	}
	if c.MaxOutgoingBytes <= 0 {
		c.MaxOutgoingBytes = defaultMaxOutgoingBytes
	}
	if c.MaxPending <= 0 {
		c.MaxPending = defaultMaxPending
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
	return c
}

// anyOrigin reports whether the allow-list admits every origin.
func (c transportConfig) anyOrigin() bool {
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

// transport is the hardened socket.io server. The dispatcher registers its
// handlers on io ("connection", then per socket Use/OnAny) and mounts
// handler. Room membership in the library (socket.Join/Leave, disconnect
// cleanup) goes through roomAdapter, which makes each change atomic; the
// dispatcher keeps its own room registry for everything it reasons about.
//
// Per engine connection the transport also keeps a connGuard: a connect gate
// (events sent right after CONNECT no longer close the connection), the
// MaxPending inbound cap and the MaxOutgoing/MaxOutgoingBytes slow-consumer
// cap. See transport_guard.go.
//
// Contract for the dispatcher (the library cannot enforce these):
//
//   - Ghost sockets (notes 4b): in the "connection" handler, first register
//     the "disconnecting"/"disconnect" listeners, then
//     `if t.dropIfGhost(s) { return }`, and only then publish the socket in
//     the dispatcher's state. v3.0.6 runs "connection" on the socket's task
//     queue after CONNECT was written, while a transport close runs the
//     socket's disconnect on another goroutine, concurrently: checking first
//     and registering afterwards leaves a window in which "disconnecting"
//     fires with no listener and the socket stays registered forever. The
//     transport's connect gate keeps client packets (malformed ones included)
//     from closing the connection during the handler; a transport-level
//     close (TCP reset, frame over the read limit) still can.
//   - Call t.watch(s) in the "connection" handler (labels the connection's
//     guards with the socket id for logs; the guards themselves are attached
//     to every engine connection automatically).
//   - Call t.eventDone(s) exactly once for every EVENT its listeners receive,
//     including events it rejects, after it has finished with it. Otherwise
//     every connection is eventually closed as a flooder after MaxPending
//     events.
//   - Never wait inside a handler for an ack from the same socket: the ack is
//     queued behind the waiting handler on the socket's task queue.
type transport struct {
	cfg transportConfig
	log *slog.Logger

	// io is the socket.io server; handlers are registered on it.
	io *socket.Server
	// handler serves cfg.Path (polling and WebSocket) with the HTTP guards.
	handler http.Handler

	engine http.Handler // the engine.io handler wrapped by handler
	guards sync.Map     // engine session id -> *connGuard

	// keepSession, when set, is asked before a session is recovered
	// (roomAdapter.RestoreSession): the dispatcher must still hold the
	// socket's state. Set once, before the server serves.
	keepSession func(id string) bool
}

// newTransport builds the socket.io server described by cfg. log receives
// refused connections and dropped clients; nil discards.
func newTransport(cfg transportConfig, log *slog.Logger) *transport {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	t := &transport{cfg: cfg, log: log}

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
	opts.SetParser(&wireParser{log: log})
	opts.SetTransports(types.NewSet[engine.TransportCtor](engine.Polling,
		wsTransportCtor{events: t, writeTimeout: cfg.PingTimeout}))
	if cfg.Recovery > 0 {
		csr := socket.DefaultConnectionStateRecovery()
		csr.SetMaxDisconnectionDuration(cfg.Recovery.Milliseconds())
		// The library fills these defaults in only when it picks the
		// adapter itself, which it does not here. Middlewares run again on
		// a recovery (the library's default skips them): an auth check
		// must see the reconnecting client, and a recovered socket then
		// reaches the "connection" handler through its task queue, as a
		// new one does, so its first events cannot overtake it.
		csr.SetSkipMiddlewares(false)
		opts.SetConnectionStateRecovery(csr)
	}
	opts.SetAdapter(roomAdapterBuilder{sessions: cfg.Recovery > 0, t: t})

	t.io = socket.NewServer(nil, opts)
	t.engine = t.io.ServeHandler(nil)
	// Registered after socket.Server's own listener, so the socket.io Client
	// (and its decoder) exists when the guards attach, and before the engine
	// lets the transport read (v3.0.6 grants read permission only after the
	// "connection" event returns), so no packet is missed.
	_ = t.io.Engine().On("connection", t.onEngineConnection)
	// First "connection" listener of every namespace: settles the connect
	// gate (see connGuard.awaitConnect) before the dispatcher's listener.
	_ = t.io.On("connection", t.onSocketConnection)
	_ = t.io.On("new_namespace", t.onNewNamespace)
	t.handler = http.HandlerFunc(t.serveHTTP)
	return t
}

// corsOptions maps the allow-list onto the library's CORS middleware. With an
// explicit list the library also refuses WebSocket upgrades from other
// origins (gorilla CheckOrigin); "*" is sent without credentials so that a
// wildcard never reflects arbitrary origins together with cookies.
func (t *transport) corsOptions() *types.Cors {
	if t.cfg.anyOrigin() {
		return &types.Cors{Origin: "*"}
	}
	// []string is matched with strings.EqualFold by v3.0.6 (types/cors.go).
	return &types.Cors{Origin: append([]string(nil), t.cfg.Origins...), Credentials: true}
}

// originAllowed applies the allow-list to one Origin header value.
func (t *transport) originAllowed(origin string) bool {
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
func (t *transport) allowRequest(ctx *types.HttpContext) error {
	origin := ctx.Headers().Peek("Origin")
	if t.originAllowed(origin) {
		return nil
	}
	t.log.Debug("socket.io handshake refused", "reason", "origin not allowed",
		"origin", origin, "remote", ctx.Request().RemoteAddr)
	return errOriginNotAllowed
}

// serveHTTP is the guarded entry point: it adds what the engine lacks.
//
//   - Path: the engine checks none, so anything else gets 404.
//   - WebSocket: the client's permessage-deflate offer is removed, see below.
//   - Polling POST: the engine compares a declared Content-Length with
//     maxHttpBufferSize (413) but reads a chunked body (ContentLength -1)
//     through io.LimitReader, silently truncating it and decoding the
//     fragment. Answering chunked bodies with 411 would break the library's
//     own Go client, which always POSTs chunked (measured: ContentLength -1,
//     Transfer-Encoding chunked), so a chunked body is read here up to
//     MaxPayload+1 bytes instead: over the limit it gets 413, otherwise the
//     engine gets it with a known length. Memory per request stays at
//     MaxPayload, as for a declared length.
func (t *transport) serveHTTP(w http.ResponseWriter, r *http.Request) {
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
	if r.Method == http.MethodPost && r.ContentLength < 0 {
		body, err := io.ReadAll(io.LimitReader(r.Body, t.cfg.MaxPayload+1))
		if err != nil {
			t.log.Debug("polling POST body unreadable", "remote", r.RemoteAddr, "err", err)
			http.Error(w, "unreadable body", http.StatusBadRequest)
			return
		}
		if int64(len(body)) > t.cfg.MaxPayload {
			http.Error(w, "payload too large", http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.TransferEncoding = nil
	}
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		w = &releasingWriter{ResponseWriter: w}
	}
	t.engine.ServeHTTP(w, r)
}

// close disconnects every socket ("server shutting down": clients reconnect)
// and closes the engine. It does not stop the caller's http.Server.
func (t *transport) close() {
	t.io.Close(nil)
}

// dropIfGhost reports whether s arrived in the "connection" handler with its
// engine connection no longer open, and if so disconnects it so that the
// library's cleanup (rooms, namespace registry) runs; the handler must then
// return without publishing the socket. Call it after registering the
// socket's "disconnecting"/"disconnect" listeners (see transport): the engine
// marks the connection closed before it emits the disconnect events, so a
// close that happens after this check reaches those listeners, and one that
// happened before is caught here. The listeners must tolerate a socket the
// handler never published. Notes 4b measured 0 ghosts in 25 000 connections
// with this check and 3-4 per 5 000 without.
func (t *transport) dropIfGhost(s *socket.Socket) bool {
	if s.Conn().ReadyState() == "open" {
		return false
	}
	s.Disconnect(true)
	return true
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
