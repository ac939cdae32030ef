package rules

import (
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// serverSetting is one key of server: with everything about it in one
// place: its schema and docs, its default (set by DefaultServer), how it is
// read, how it is compared on reload, and whether a reload may change it.
// Adding a setting is one entry here plus its Server field (and, when the
// transport needs it, the line in router.New that hands it over).
type serverSetting struct {
	field
	// live settings are read by the runtime at every use, so a reload may
	// change them; the others shape the listener and are fixed at start-up.
	live bool
	// set reads the value from n into s; l reports a bad value.
	set func(l *loader, n *yaml.Node, s *Server, what string)
	// get is the value compared on reload and shown in errors.
	get func(s *Server) any
}

// serverSettings are the keys of server:, in the order of the README.
var serverSettings = []serverSetting{
	{field{"listen", "`host:port` or `:port` to listen on; default `:3001`. The PORT environment variable and `--addr` override it.",
		obj("type", "string", "pattern", ":", "default", DefaultListen, "examples", []any{":3001", "127.0.0.1:3001"}), false},
		false, func(l *loader, n *yaml.Node, s *Server, what string) {
			if v, ok := l.str(n, what); ok {
				if !strings.Contains(v, ":") {
					l.errf(n, "%s must be host:port or :port, got %q", what, v)
				}
				s.Listen = v
			}
		}, func(s *Server) any { return s.Listen }},
	{field{"path", "The socket.io path; default `/socket.io/`.",
		obj("type", "string", "pattern", "^/", "default", DefaultPath), false},
		false, func(l *loader, n *yaml.Node, s *Server, what string) {
			if v, ok := l.str(n, what); ok {
				if !strings.HasPrefix(v, "/") {
					l.errf(n, "%s must start with /, got %q", what, v)
				}
				s.Path = strings.TrimSuffix(v, "/") + "/"
			}
		}, func(s *Server) any { return s.Path }},
	{field{"cors_origins", "`\"*\"` (any origin, the default) or a list of origins; other origins are refused on polling and WebSocket handshakes.",
		obj("anyOf", []schema{obj("type", "string"), obj("type", "array", "items", obj("type", "string"))},
			"default", "*", "examples", []any{[]any{"https://app.example.com"}}), false},
		false, func(l *loader, n *yaml.Node, s *Server, what string) { s.Origins = l.strings(n, what) },
		func(s *Server) any { return s.Origins }},
	{field{"max_payload", "The largest message, in bytes: `65536`, `64KiB` or `1MiB` (at least 1024); default 64 KiB.",
		sizeValue(1024, DefaultMaxPayload, "64KiB", "1MiB"), false},
		false, func(l *loader, n *yaml.Node, s *Server, what string) { s.MaxPayload = l.integer(n, what, 1024) },
		func(s *Server) any { return s.MaxPayload }},
	{field{"ping_interval", "engine.io heartbeat interval, a duration such as `25s`; default `25s`.",
		durationValue(DefaultPingInterval.String()), false},
		false, func(l *loader, n *yaml.Node, s *Server, what string) { s.PingInterval = l.duration(n, what) },
		func(s *Server) any { return s.PingInterval }},
	{field{"ping_timeout", "How long engine.io waits for a heartbeat answer, a duration such as `20s`; default `20s`.",
		durationValue(DefaultPingTimeout.String()), false},
		false, func(l *loader, n *yaml.Node, s *Server, what string) { s.PingTimeout = l.duration(n, what) },
		func(s *Server) any { return s.PingTimeout }},
	{field{"max_outgoing", "Packets queued to one client before it is dropped as too slow (at least 16); default 4096.",
		countValue(16, DefaultMaxOutgoing), false},
		false, func(l *loader, n *yaml.Node, s *Server, what string) { s.MaxOutgoing = int(l.integer(n, what, 16)) },
		func(s *Server) any { return s.MaxOutgoing }},
	{field{"max_pending", "Events queued from one client before it is disconnected as a flood (at least 16); default 1024.",
		countValue(16, DefaultMaxPending), false},
		false, func(l *loader, n *yaml.Node, s *Server, what string) { s.MaxPending = int(l.integer(n, what, 16)) },
		func(s *Server) any { return s.MaxPending }},
	{field{"max_rooms_per_socket", "Rooms one socket may be in (at least 1); a `join` past it is refused like a failed validation and answered by the join's `reject`. Applies live on reload; default 100.",
		countValue(1, DefaultMaxRoomsPerSocket), false},
		true, func(l *loader, n *yaml.Node, s *Server, what string) {
			s.MaxRoomsPerSocket = int(l.integer(n, what, 1))
		},
		func(s *Server) any { return s.MaxRoomsPerSocket }},
	{field{"max_room_name", "The longest room name a `join` accepts, in bytes (at least 1); longer names are refused like a full socket. Applies live on reload; default 256.",
		countValue(1, DefaultMaxRoomName), false},
		true, func(l *loader, n *yaml.Node, s *Server, what string) { s.MaxRoomName = int(l.integer(n, what, 1)) },
		func(s *Server) any { return s.MaxRoomName }},
	{field{"recovery", "Connection state recovery: how long a socket whose transport dropped keeps its id, rooms, data and stored values, and has missed events replayed, while its client reconnects (a duration such as `2m`); default `0s`, off.",
		durationValue("0s"), false},
		false, func(l *loader, n *yaml.Node, s *Server, what string) { s.Recovery = l.durationOrZero(n, what) },
		func(s *Server) any { return s.Recovery }},
	{field{"recovery_max_events", "In a cluster with `recovery` on, how many events are kept in Redis for one socket while it is away (at least 16); a client that missed more is not recovered: its session ends as a normal disconnect. Default 1000.",
		countValue(16, DefaultRecoveryMaxEvents), false},
		false, func(l *loader, n *yaml.Node, s *Server, what string) {
			s.RecoveryMaxEvents = int(l.integer(n, what, 16))
		},
		func(s *Server) any { return s.RecoveryMaxEvents }},
	{field{"lean_websocket", "Serve clients that open a WebSocket straight away (`transports: [\"websocket\"]`) without the socket.io library's per-connection objects: an idle socket then costs a few KiB instead of about 30. Polling clients, polling sessions that upgrade and every session while `recovery` is on are served by the library as before. Default `true`; `false` serves every session on the library.",
		obj("type", "boolean", "default", true), false},
		false, func(l *loader, n *yaml.Node, s *Server, what string) { s.LeanWebSocket = l.boolean(n, what) },
		func(s *Server) any { return s.LeanWebSocket }},
}

// serverFields are the keys of server: for the schema and the docs.
var serverFields = func() []field {
	out := make([]field, len(serverSettings))
	for i, s := range serverSettings {
		out[i] = s.field
	}
	return out
}()

// serverKeys are the names in serverFields, for "unknown field" hints.
var serverKeys = keysOf(serverFields)

// DefaultServer is the server section of a file that has none: the
// defaults of the reference Node server, and the router's own bounds.
func DefaultServer() Server {
	return Server{
		Listen: DefaultListen, Path: DefaultPath, Origins: []string{"*"},
		MaxPayload: DefaultMaxPayload, PingInterval: DefaultPingInterval, PingTimeout: DefaultPingTimeout,
		MaxOutgoing: DefaultMaxOutgoing, MaxPending: DefaultMaxPending,
		MaxRoomsPerSocket: DefaultMaxRoomsPerSocket, MaxRoomName: DefaultMaxRoomName,
		RecoveryMaxEvents: DefaultRecoveryMaxEvents, LeanWebSocket: true,
	}
}

func (l *loader) server(n *yaml.Node) {
	for _, p := range l.pairs(n, "server") {
		i := serverIndex(p.key.Value)
		if i < 0 {
			l.unknown(p.key, "server", serverKeys)
			continue
		}
		serverSettings[i].set(l, p.val, &l.set.Server, "server."+p.key.Value)
	}
}

func serverIndex(key string) int {
	for i, s := range serverSettings {
		if s.name == key {
			return i
		}
	}
	return -1
}

// FixedChanges returns an error naming every setting that next changes
// but only a restart may (the listener is built from them), with both
// values; nil when a reload from s to next may go ahead.
func (s Server) FixedChanges(next Server) error {
	var errs []error
	for _, set := range serverSettings {
		if set.live {
			continue
		}
		a, b := fmt.Sprint(set.get(&s)), fmt.Sprint(set.get(&next))
		if a != b {
			errs = append(errs, fmt.Errorf("reload not supported for server.%s: old=%q, new=%q (restart to change it)", set.name, a, b))
		}
	}
	return errors.Join(errs...)
}
