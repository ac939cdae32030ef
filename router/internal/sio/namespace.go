package sio

// Namespaces besides "/" and what a Handler may learn about a socket's
// connection (handshake, transport, engine connection counts).
//
// Why: the server was built for one namespace, the router's. The socket.io
// Admin UI speaks its own protocol on a second namespace ("/admin") over the
// same path and port, with its own handshake check and events, which must
// never reach the router's rules. Namespace gives such a namespace its own
// Handler, with the same ordering guarantees (Admit, Connect, Event in
// order, Disconnect once) and the same per-connection guards; the direct
// event path stays the main namespace's alone.

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Namespace serves the namespace name (such as "/admin") with its own
// Handler h. Call it once per namespace, before serving: clients that
// connect to a namespace nobody serves get connect_error "Invalid
// namespace". Rooms (Socket.Join) and Broadcast are the main namespace's
// only; a Handler of another namespace emits to its sockets one by one.
func (t *Server) Namespace(name string, h Handler) error {
	if h == nil {
		return errors.New("sio: a Handler is required")
	}
	if !strings.HasPrefix(name, "/") || name == "/" {
		return fmt.Errorf("sio: namespace %q: want a name starting with / other than /", name)
	}
	if _, dup := t.namespaces.LoadOrStore(name, h); dup {
		return fmt.Errorf("sio: namespace %q is served already", name)
	}
	nsp := t.io.Of(name, nil) // new_namespace adds the connect gate (onNewNamespace)
	nsp.Use(t.admit)
	_ = nsp.On("connection", t.onConnection)
	return nil
}

// handlerOf is the Handler of the namespace called name: the one given to
// Namespace, or the server's own.
func (t *Server) handlerOf(name string) Handler {
	if name != "/" {
		if h, ok := t.namespaces.Load(name); ok {
			return h.(Handler)
		}
	}
	return t.h
}

// nspName is the name of the namespace the adapter serves.
func (a *roomAdapter) nspName() string {
	if nsp := a.Nsp(); nsp != nil {
		return nsp.Name()
	}
	return "/"
}

// Namespace is the name of the namespace s belongs to ("/" for the main
// one).
func (s *Socket) Namespace() string {
	if s.lean != nil {
		return s.lean.nsp
	}
	return s.ls.Nsp().Name()
}

// Handshake is what a client's handshake carried, for display (the Admin
// UI's socket details).
type Handshake struct {
	// Address is the client's IP address as the server saw it.
	Address string
	// Headers are the HTTP headers of the handshake request, each a
	// string or a []string.
	Headers map[string]any
	// Query is the handshake URL's query, each a string or a []string.
	Query map[string]any
	// Time is when the handshake happened; Issued the same in Unix
	// milliseconds.
	Time   time.Time
	Issued int64
	// Secure reports TLS; XDomain a cross-origin handshake.
	Secure, XDomain bool
	// URL is the handshake request's URL (path and query).
	URL string
}

// Handshake returns what s's client sent in its handshake.
func (s *Socket) Handshake() Handshake {
	if s.lean != nil {
		return s.lean.lc.handshake()
	}
	hs := s.ls.Handshake()
	if hs == nil {
		return Handshake{Headers: map[string]any{}, Query: map[string]any{}}
	}
	out := Handshake{Address: hs.Address, Secure: hs.Secure, XDomain: hs.Xdomain, URL: hs.Url,
		Headers: make(map[string]any, len(hs.Headers)), Query: make(map[string]any, len(hs.Query))}
	for k, v := range hs.Headers {
		out.Headers[k] = v
	}
	for k, v := range hs.Query {
		out.Query[k] = v
	}
	// The library's Issued is in milliseconds, as Node's Date.now().
	out.Issued = hs.Issued
	out.Time = time.UnixMilli(hs.Issued)
	if hs.Issued < 1e12 { // seconds in some versions
		out.Time = time.Unix(hs.Issued, 0)
		out.Issued *= 1000
	}
	if out.URL == "" {
		out.URL = (&url.URL{RawQuery: url.Values(s.Query()).Encode()}).String()
	}
	return out
}

// ClientID is the id of s's engine.io connection, which the sockets a
// client opens on several namespaces share.
func (s *Socket) ClientID() string {
	if s.lean != nil {
		return s.lean.lc.id
	}
	c := s.ls.Conn()
	if c == nil {
		return ""
	}
	return c.Id()
}

// OnUpgrade calls fn with the new transport's name when s's connection
// moves to another transport (polling to WebSocket). fn runs on the
// engine's goroutine: it must not block.
func (s *Socket) OnUpgrade(fn func(transport string)) {
	if s.lean != nil {
		return // a lean session is a WebSocket from the start
	}
	c := s.ls.Conn()
	if c == nil {
		return
	}
	_ = c.On("upgrade", func(...any) { fn(s.Transport()) })
}

// Close closes s's connection without a DISCONNECT packet: the client sees
// a transport close and reconnects by itself (recovering the session when
// Config.Recovery allows). Disconnect, by contrast, tells the client to
// stay away.
func (s *Socket) Close() {
	if s.lean != nil {
		s.leanClose()
		return
	}
	s.ls.Disconnect(true)
}

// Clients counts the engine.io connections open now, and how many of them
// are still on HTTP long-polling.
func (t *Server) Clients() (total, polling int) {
	t.guards.Range(func(_, v any) bool {
		total++
		if tr := v.(*connGuard).conn.Transport(); tr != nil && tr.Name() == "polling" {
			polling++
		}
		return true
	})
	return total + t.lean.count(), polling
}
