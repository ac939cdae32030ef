package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rtcio/rtcio-router/router/internal/admin"
	"github.com/rtcio/rtcio-router/router/internal/sio"
	"github.com/rtcio/rtcio-router/rules"
)

// Options configure a Router. The zero value of every field but Rules or
// RulesFile has a usable default.
type Options struct {
	// RulesFile is the rules file to load; Source, when set, is used
	// instead of reading it (for the embedded default).
	RulesFile string
	Source    []byte
	// Logger receives the router's logs; nil means slog.Default().
	Logger *slog.Logger
	// Environ is the environment exposed to expressions; nil captures
	// the process environment at each load.
	Environ map[string]string
	// Redis, when set, overrides the file's cluster.redis (the binary's
	// --redis and REDIS_URL): the router joins that cluster (cluster.go).
	Redis string
	// Version is reported by rtcio_build_info; empty: the module's.
	Version string
}

// Router is a running rtcio-router: a socket.io server whose behaviour is
// the current rules.Set. It is an http.Handler for the socket.io path and
// /health.
type Router struct {
	log   *slog.Logger
	opts  Options
	st    *state
	rules atomic.Pointer[rules.Set]
	tr    *sio.Server
	mux   *http.ServeMux

	reloadMu     sync.Mutex // one reload at a time
	draining     atomic.Bool
	lastReloadOK atomic.Bool
	lastReload   atomic.Pointer[string] // the error of the last failed reload
	// reloads counts reload attempts by outcome, for /health and metrics.
	reloadsOK, reloadsFailed atomic.Int64
	// rec is connection state recovery (recovery.go).
	rec recoveryState
	// cl is the node's cluster (cluster.go); nil for a single process.
	cl *cluster
	// admin serves the socket.io Admin UI (admin.go); nil unless admin:
	// enables it.
	admin *admin.Hub
	// m are the Prometheus metrics (metrics.go); nil with metrics off.
	m *metrics
}

// ErrCluster wraps New's errors in joining the cluster (Redis unreachable,
// a bad URL), which are no fault of the rules.
var ErrCluster = errors.New("cluster")

// New loads the rules and builds the server. It does not listen: serve
// Handler() from an http.Server you own.
func New(opts Options) (*Router, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	r := &Router{log: opts.Logger, opts: opts, st: newState()}
	set, sum, err := r.load()
	if err != nil {
		return nil, err
	}
	r.m = newMetrics(r, set, opts.Version)
	r.m.loadRules(set, r.opts.RulesFile, sum)
	if url := opts.redisURL(set); url != "" {
		if err := r.joinCluster(url, set); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCluster, err)
		}
	}
	r.st.syncStores(set)
	r.rules.Store(set)
	r.lastReloadOK.Store(true)

	var sessions sio.SessionStore
	if r.cl != nil && set.Server.Recovery > 0 {
		sessions = sessionStore{r} // recovery_cluster.go
	}
	r.tr, err = sio.New(sio.Config{
		Path:             set.Server.Path,
		Origins:          set.Server.Origins,
		MaxPayload:       set.Server.MaxPayload,
		PingInterval:     set.Server.PingInterval,
		PingTimeout:      set.Server.PingTimeout,
		MaxOutgoing:      set.Server.MaxOutgoing,
		MaxOutgoingBytes: sio.DefaultMaxOutgoingBytes,
		MaxPending:       set.Server.MaxPending,
		Recovery:         set.Server.Recovery,
		Sessions:         sessions,
		LeanWebSocket:    set.Server.LeanWebSocket && os.Getenv("RTCIO_LEAN_WEBSOCKET") != "0",
		// The relay reads the envelope's target and stamps its source;
		// the rest is forwarded as the client wrote it (relay.go).
		PassThrough: []string{rules.EventMessage},
	}, socketHandler{r}, r.log)
	if err != nil {
		if r.cl != nil {
			r.cl.leave()
		}
		return nil, fmt.Errorf("socket.io server: %w", err)
	}
	r.rec.window = set.Server.Recovery
	r.st.wire = socketWire{r.tr}
	if r.cl != nil {
		r.st.wire = clusterWire{local: socketWire{r.tr}, bus: r.cl.bus, log: r.cl.log, st: r.st, m: r.m, failures: &everySecond{},
			inbox: r.cl.inbox, r: r}
	}
	if err := r.startAdmin(set); err != nil {
		if r.cl != nil {
			r.cl.leave()
		}
		return nil, fmt.Errorf("admin: %w", err)
	}
	r.mux = http.NewServeMux()
	r.mux.Handle(r.tr.Path(), r.refuseWhileDraining(r.tr))
	r.mux.HandleFunc("/health", r.serveHealth)
	if set.Admin.Enabled && set.Admin.UI {
		r.mux.Handle("GET "+admin.UIPath, admin.UIHandler(set.Server.Path))
	}
	if ms := set.Metrics; r.m != nil && ms.MainPort {
		r.mux.Handle(ms.Path, r.m.handler())
	}
	return r, nil
}

// load reads and compiles the rules; sum is the digest of the file's
// content, for rtcio_config_info.
func (r *Router) load() (set *rules.Set, sum []byte, err error) {
	o := rules.Options{Host: host{r.st}, Environ: r.opts.Environ}
	src := r.opts.Source
	if src == nil {
		if src, err = os.ReadFile(r.opts.RulesFile); err != nil {
			return nil, nil, fmt.Errorf("read rules: %w", err)
		}
	}
	set, err = rules.Parse(r.opts.RulesFile, src, o)
	return set, configSum(src), err
}

// Rules returns the rules in force.
func (r *Router) Rules() *rules.Set { return r.rules.Load() }

// Sockets counts the sockets the router holds now, suspended ones
// included (the figure /health reports).
func (r *Router) Sockets() int {
	r.st.mu.RLock()
	defer r.st.mu.RUnlock()
	return r.st.count()
}

// SocketsPeak returns Sockets and the most sockets held at once since the
// previous call (at least now): the binary reads it every few seconds to
// give memory back to the system after many clients left at once, and a
// peak that came and went between two readings must count too.
func (r *Router) SocketsPeak() (now, peak int) {
	r.st.mu.Lock()
	defer r.st.mu.Unlock()
	now = r.st.count()
	peak = max(r.st.peak, now)
	r.st.peak = now
	return now, peak
}

// ServeHTTP serves the socket.io path, /health and, unless metrics are off
// or metrics.main_port is false, metrics.path.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mux.ServeHTTP(w, req)
}

// refuseWhileDraining turns away new handshakes (requests without a session
// id) once Drain is called, so clients reconnect to another instance, while
// established sessions keep working until Close.
func (r *Router) refuseWhileDraining(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Query().Get("sid") != "" {
			next.ServeHTTP(w, req)
			return
		}
		draining := r.draining.Load()
		r.m.handshake(draining)
		if draining {
			http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// HTTPServer returns an http.Server that serves the router (Handler) with
// the timeouts its transport needs; set Addr (or call Serve with a
// listener), ErrorLog or TLS on it as usual. Why a method: the right values
// depend on the rules' server settings, and net/http's defaults hold a
// connection as long as its peer likes. With them:
//
//   - ReadHeaderTimeout (10s) bounds sending a request's headers.
//   - IdleTimeout is server.ping_timeout (default 20s): a keep-alive
//     connection with no request for that long is closed.
//   - A polling POST body must arrive within server.ping_timeout of its
//     headers (the handler sets that deadline per request; over it: 408 and
//     the connection closed), and a POST without a session id is refused
//     with 400 before its body is read.
//   - No WriteTimeout: a long-poll GET legitimately waits up to
//     server.ping_interval before its answer is written, which a write
//     deadline would cut. No ReadTimeout: the body deadline above is per
//     POST instead, and no read deadline is ever set on a waiting GET
//     (net/http cancels the request of a connection whose read fails, which
//     ends the long poll). WebSocket connections are hijacked and keep their
//     own deadlines.
//
// Shut it down after Close, which answers pending long polls and cuts
// unfinished bodies, so Shutdown does not wait for them.
func (r *Router) HTTPServer() *http.Server {
	srv := &http.Server{Handler: r}
	r.tr.ConfigureHTTP(srv)
	return srv
}

// Drain marks the router as going away: /health answers 503 so load
// balancers stop sending clients, and new handshakes are refused. Sockets
// suspended for connection state recovery are cleaned up at once, since
// the handshake that would recover them is refused too.
func (r *Router) Drain() {
	r.draining.Store(true)
	r.endSuspensions()
}

// handOffBound is how long Close waits for the WebSocket clients of a
// node whose sessions live in Redis to answer its close frame: a client
// answers within a round trip; one that does not (a dead network) is cut
// after this, as without the hand-off. Short, since the node is stopping
// and the load balancer may still send it reconnects, which it refuses.
const handOffBound = 1500 * time.Millisecond

// Close disconnects every socket without a DISCONNECT packet, so clients
// see a transport close and reconnect (to another instance, after Drain),
// and waits until each socket's disconnect rules have run or ctx ends.
// Pending long-poll GETs are answered with the CLOSE packet and polling
// bodies still arriving are cut, so that the http.Server's Shutdown, called
// after Close, finds no polling request to wait for.
//
// In a cluster with recovery on, the sockets' clients recover their
// sessions on another node, so what they sent as the node stopped must
// not be lost: each WebSocket client is sent a close frame and its
// connection is read, and its events handled, until its answer (within
// handOffBound) before anything is closed (sio.Server.HandOff). Its
// session is then suspended in Redis as after any transport close.
func (r *Router) Close(ctx context.Context) error {
	r.Drain()
	if r.shared() {
		r.tr.HandOff(handOffBound)
	} else {
		r.tr.Close()
	}
	if r.admin != nil {
		defer r.admin.Stop()
	}
	// In a cluster the node leaves only once its sockets are cleaned up,
	// so that their peers on other nodes hear of it at once.
	if r.cl != nil {
		defer r.cl.leave()
	}
	for {
		r.st.mu.RLock()
		n := r.st.count()
		r.st.mu.RUnlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("close: %d sockets still cleaning up: %w", n, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
