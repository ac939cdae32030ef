// Package admin is the server side of the socket.io Admin UI
// (@socket.io/admin-ui 0.5.1) for rtcio-router: the /admin namespace's
// Handler, with the UI's login, the events it listens to and the commands it
// sends.
//
// Why a package of its own: the protocol (event names, payload shapes, the
// login and its sessions, the 2 s stats) has nothing to do with the rules;
// the router only answers the questions of Runtime under its own lock and
// reports changes (Hub.SocketConnected and the rest). Everything the Admin
// UI shows is this node's: in a cluster, each node serves its own /admin.
//
// Ordering: notifications arrive under the router's event lock, in the
// order of the changes, and are queued without blocking; one goroutine
// sends them. A UI's all_sockets snapshot is taken under the same lock and
// queued at the point of the snapshot, and the UI starts hearing
// notifications from that point, so it sees every change exactly once.
package admin

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rtcio/rtcio-router/router/internal/sio"
)

// Namespace is where the Admin UI connects.
const Namespace = "/admin"

// MainNamespace is the namespace of the router's sockets, the only one the
// commands act on.
const MainNamespace = "/"

// Config is the admin: section as the hub needs it.
type Config struct {
	// NoAuth admits every UI (admin.auth: none).
	NoAuth bool
	// Username and PasswordHash (bcrypt) are the UI's credentials.
	Username, PasswordHash string
	// ReadOnly announces no command and refuses them all.
	ReadOnly bool
	// ServerID names the node in the UI; "" is the host name.
	ServerID string
	// StatsEvery is the server_stats period; 0 is 2 s, as the package.
	StatsEvery time.Duration
}

// Socket is one of the router's sockets as the UI lists it.
type Socket struct {
	ID        string
	ClientID  string
	Transport string
	Data      map[string]any
	Handshake sio.Handshake
	// Rooms are the socket's rooms in join order, without its own id room.
	Rooms []string
}

// Runtime is the router as the UI sees and commands it. A filter selects
// sockets as socket.io's io.in(filter) does: "" is every socket, a socket
// id that socket, anything else the members of that room; only this node's
// sockets are selected.
type Runtime interface {
	// Snapshot calls fn with every socket of this node, under the lock
	// that notifications are made under.
	Snapshot(fn func([]Socket))
	// Count is the number of sockets on this node.
	Count() int
	// Clients counts engine.io connections, and those on polling.
	Clients() (total, polling int)
	// Join puts the selected sockets in room; Leave takes them out.
	Join(filter, room string)
	Leave(filter, room string)
	// Disconnect disconnects the selected sockets: with close, by closing
	// their connection (they reconnect), else with a DISCONNECT packet.
	Disconnect(filter string, close bool)
	// Emit sends event with args to the selected sockets.
	Emit(filter, event string, args []any)
}

// maxQueue bounds the notifications waiting to be sent; past it they are
// dropped (and counted) rather than growing without bound behind a stalled
// UI.
const maxQueue = 1 << 14

// maxSessions bounds the login sessions kept; sessionTTL is how long one
// lets the UI reconnect without the password.
const (
	maxSessions = 1024
	sessionTTL  = 24 * time.Hour
)

// Hub serves the /admin namespace (it is its sio.Handler) and sends the
// router's changes to the UIs connected there.
type Hub struct {
	cfg     Config
	rt      Runtime
	log     *slog.Logger
	started time.Time
	base    map[string]any // serverId, hostname, pid

	// uis counts the connected UIs; zero, notifications are not queued.
	uis atomic.Int32

	mu      sync.Mutex
	queue   []item
	wake    chan struct{}
	dropped int64
	// counts are the aggregated events of the current second.
	counts map[aggKey]int

	sessMu   sync.Mutex
	sessions map[string]time.Time // session id -> expiry
	// bcryptSem lets one password check run at a time: each costs tens
	// of milliseconds of CPU, and guesses must not take the server's.
	bcryptSem chan struct{}

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// item is one queued send: to one UI (to) or every subscribed UI, or a
// change of the subscribers.
type item struct {
	kind  int
	to    *sio.Socket
	event string
	args  []any
}

const (
	kindBroadcast = iota
	kindTo
	kindSubscribe
	kindUnsubscribe
)

type aggKey struct {
	ts           int64
	typ, subType string
}

// features are what the UI may offer: every command in its socket.io v4
// form (a filter that is a socket id or a room), aggregated counts, and
// ALL_EVENTS, which the UI needs to show its sockets and rooms pages
// (event_received/event_sent themselves are not sent: see the README).
var features = []string{"EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"}

// New returns the hub; Start begins its sender and stats.
func New(cfg Config, rt Runtime, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.StatsEvery <= 0 {
		cfg.StatsEvery = 2 * time.Second
	}
	host, _ := os.Hostname()
	id := cfg.ServerID
	if id == "" {
		id = host
	}
	return &Hub{cfg: cfg, rt: rt, log: log, started: time.Now(),
		base:      map[string]any{"serverId": id, "hostname": host, "pid": os.Getpid()},
		wake:      make(chan struct{}, 1),
		counts:    map[aggKey]int{},
		sessions:  map[string]time.Time{},
		bcryptSem: make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
}

// Start runs the sender and the stats ticker until Stop.
func (h *Hub) Start() { go h.run() }

// Stop ends them; queued sends are dropped.
func (h *Hub) Stop() {
	h.stopOnce.Do(func() { close(h.stop) })
	<-h.done
}

var _ sio.Handler = (*Hub)(nil)

// errInvalid is what a refused UI sees; the UI shows its login form again
// on exactly this message.
var errInvalid = errors.New("invalid credentials")

// Admit checks the UI's login: a session id from an earlier login, or the
// username and password (bcrypt). Its admission is the new session id to
// give the UI, if any.
func (h *Hub) Admit(s *sio.Socket) (any, error) {
	if h.cfg.NoAuth {
		return "", nil
	}
	auth := s.Auth()
	if sid, _ := auth["sessionId"].(string); sid != "" && h.sessionValid(sid) {
		return "", nil
	}
	user, _ := auth["username"].(string)
	pass, _ := auth["password"].(string)
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(h.cfg.Username)) == 1
	h.bcryptSem <- struct{}{}
	err := bcrypt.CompareHashAndPassword([]byte(h.cfg.PasswordHash), []byte(pass))
	<-h.bcryptSem
	if !userOK || err != nil {
		h.log.Warn("admin UI login refused", "address", s.Handshake().Address)
		return nil, errInvalid
	}
	return h.newSession(), nil
}

// Connect greets a UI: its session id (after a password login), config,
// then all_sockets, from which point it hears every change.
func (h *Hub) Connect(s *sio.Socket) {
	h.uis.Add(1)
	s.Bind(true)
	if sid, _ := s.Admission().(string); sid != "" {
		_ = s.Emit("session", sid)
	}
	feats := []string{}
	if !h.cfg.ReadOnly {
		feats = append(feats, features...)
	}
	feats = append(feats, "AGGREGATED_EVENTS", "ALL_EVENTS")
	_ = s.Emit("config", map[string]any{"supportedFeatures": feats})
	h.rt.Snapshot(func(list []Socket) {
		out := make([]any, len(list))
		for i := range list {
			out[i] = serialize(&list[i])
		}
		h.push(item{kind: kindTo, to: s, event: "all_sockets", args: []any{out}}, true)
		h.push(item{kind: kindSubscribe, to: s}, true)
	})
	h.push(item{kind: kindTo, to: s, event: "server_stats", args: []any{h.stats()}}, true)
	h.log.Info("admin UI connected", "address", s.Handshake().Address)
}

// Recover treats a UI that recovered its connection as a new one.
func (h *Hub) Recover(s *sio.Socket) bool { h.Connect(s); return true }

// KeepSession gives no session back: a UI starts afresh (all_sockets).
func (h *Hub) KeepSession(string) bool { return false }

// Disconnect forgets the UI.
func (h *Hub) Disconnect(s *sio.Socket, _ string) {
	if s.Bound() == nil {
		return
	}
	h.uis.Add(-1)
	h.push(item{kind: kindUnsubscribe, to: s}, true)
}

// Event runs one of the UI's commands, in its socket.io v4 form:
// join(nsp, room, filter), leave(nsp, room, filter),
// _disconnect(nsp, close, filter), emit(nsp, filter, event, ...args).
// Commands for another namespace than the router's are ignored.
func (h *Hub) Event(s *sio.Socket, ev sio.Event) {
	if h.cfg.ReadOnly {
		h.log.Warn("admin UI command refused: admin.readonly", "command", ev.Name)
		return
	}
	arg := func(i int) any {
		if i < len(ev.Args) {
			return ev.Args[i]
		}
		return nil
	}
	str := func(i int) string { v, _ := arg(i).(string); return v }
	if str(0) != MainNamespace {
		h.log.Debug("admin UI command for another namespace ignored", "command", ev.Name, "nsp", arg(0))
		return
	}
	switch ev.Name {
	case "join", "leave":
		room := str(1)
		if room == "" {
			return
		}
		h.log.Info("admin UI command", "command", ev.Name, "room", room, "filter", str(2))
		if ev.Name == "join" {
			h.rt.Join(str(2), room)
		} else {
			h.rt.Leave(str(2), room)
		}
	case "_disconnect":
		closeConn, _ := arg(1).(bool)
		h.log.Info("admin UI command", "command", ev.Name, "close", closeConn, "filter", str(2))
		h.rt.Disconnect(str(2), closeConn)
	case "emit":
		event := str(2)
		if event == "" {
			return
		}
		h.log.Info("admin UI command", "command", ev.Name, "event", event, "filter", str(1))
		var args []any
		if len(ev.Args) > 3 {
			args = ev.Args[3:]
		}
		h.rt.Emit(str(1), event, args)
	default:
		h.log.Debug("unknown admin UI command", "command", ev.Name)
	}
}

// Active reports whether a UI is connected: without one, the router need
// not describe its changes.
func (h *Hub) Active() bool { return h.uis.Load() > 0 }

// SocketConnected reports a new socket of the router (its rooms as they
// are). Callers hold the router's lock.
func (h *Hub) SocketConnected(s Socket) {
	h.count("rawConnection", "")
	h.count("connection", MainNamespace)
	if h.Active() {
		h.push(item{event: "socket_connected", args: []any{serialize(&s), now()}}, false)
	}
}

// SocketUpdated reports a change of a socket's transport.
func (h *Hub) SocketUpdated(id, transport string) {
	if h.Active() {
		h.push(item{event: "socket_updated", args: []any{map[string]any{"id": id, "nsp": MainNamespace, "transport": transport}}}, false)
	}
}

// SocketDisconnected reports the end of a socket, after its rooms were
// left. Callers hold the router's lock.
func (h *Hub) SocketDisconnected(id, reason string) {
	h.count("rawDisconnection", reason)
	h.count("disconnection", MainNamespace)
	if h.Active() {
		h.push(item{event: "socket_disconnected", args: []any{MainNamespace, id, reason, now()}}, false)
	}
}

// RoomJoined and RoomLeft report membership changes. Callers hold the
// router's lock.
func (h *Hub) RoomJoined(room, id string) {
	if h.Active() {
		h.push(item{event: "room_joined", args: []any{MainNamespace, room, id, now()}}, false)
	}
}

// RoomLeft: see RoomJoined.
func (h *Hub) RoomLeft(room, id string) {
	if h.Active() {
		h.push(item{event: "room_left", args: []any{MainNamespace, room, id, now()}}, false)
	}
}

// now is a timestamp as the package sends them: a JavaScript Date, which
// JSON turns into an ISO string.
func now() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000Z") }

// push queues it; must (greetings, subscriptions) ignores the bound.
func (h *Hub) push(it item, must bool) {
	h.mu.Lock()
	if !must && len(h.queue) >= maxQueue {
		h.dropped++
		h.mu.Unlock()
		return
	}
	h.queue = append(h.queue, it)
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func (h *Hub) count(typ, subType string) {
	ts := time.Now().Truncate(time.Second).UnixMilli()
	h.mu.Lock()
	h.counts[aggKey{ts, typ, subType}]++
	h.mu.Unlock()
}

// run sends the queue in order and server_stats every StatsEvery.
func (h *Hub) run() {
	defer close(h.done)
	tick := time.NewTicker(h.cfg.StatsEvery)
	defer tick.Stop()
	subs := map[*sio.Socket]struct{}{}
	var lastDropped int64
	for {
		select {
		case <-h.stop:
			return
		case <-tick.C:
			if len(subs) > 0 {
				st := h.stats()
				for s := range subs {
					_ = s.Emit("server_stats", st)
				}
			} else {
				h.mu.Lock()
				clear(h.counts)
				h.mu.Unlock()
			}
		case <-h.wake:
		}
		h.mu.Lock()
		batch := h.queue
		h.queue = nil
		dropped := h.dropped
		h.mu.Unlock()
		if dropped != lastDropped {
			h.log.Warn("admin UI notifications dropped: the UIs do not keep up", "dropped", dropped-lastDropped)
			lastDropped = dropped
		}
		for _, it := range batch {
			switch it.kind {
			case kindSubscribe:
				subs[it.to] = struct{}{}
			case kindUnsubscribe:
				delete(subs, it.to)
			case kindTo:
				_ = it.to.Emit(it.event, it.args...)
			default:
				for s := range subs {
					_ = s.Emit(it.event, it.args...)
				}
			}
		}
	}
}

// stats is server_stats: who this node is, its connections and the
// aggregated events since the last call.
func (h *Hub) stats() map[string]any {
	total, polling := h.rt.Clients()
	h.mu.Lock()
	agg := make([]any, 0, len(h.counts))
	for k, n := range h.counts {
		e := map[string]any{"timestamp": k.ts, "type": k.typ, "count": n}
		if k.subType != "" {
			e["subType"] = k.subType
		}
		agg = append(agg, e)
	}
	clear(h.counts)
	h.mu.Unlock()
	out := make(map[string]any, 10)
	for k, v := range h.base {
		out[k] = v
	}
	out["uptime"] = time.Since(h.started).Seconds()
	out["clientsCount"] = total
	out["pollingClientsCount"] = polling
	out["aggregatedEvents"] = agg
	out["namespaces"] = []any{
		map[string]any{"name": MainNamespace, "socketsCount": h.rt.Count()},
		map[string]any{"name": Namespace, "socketsCount": int(h.uis.Load())},
	}
	return out
}

// serialize is a socket as the package's serialize() writes it: rooms
// include the socket's own id room first, as socket.io's socket.rooms.
func serialize(s *Socket) map[string]any {
	hs := s.Handshake
	address := hs.Address
	for _, k := range []string{"cf-connecting-ip", "x-forwarded-for"} {
		if v, ok := hs.Headers[k].(string); ok && v != "" {
			address = v
			break
		}
	}
	rooms := make([]string, 0, len(s.Rooms)+1)
	rooms = append(append(rooms, s.ID), s.Rooms...)
	data := s.Data
	if data == nil {
		data = map[string]any{}
	}
	return map[string]any{
		"id":        s.ID,
		"clientId":  shortID(s.ClientID),
		"transport": s.Transport,
		"nsp":       MainNamespace,
		"data":      data,
		"handshake": map[string]any{
			"address": address,
			"headers": hs.Headers,
			"query":   hs.Query,
			"issued":  hs.Issued,
			"secure":  hs.Secure,
			"time":    hs.Time.Format("Mon Jan 02 2006 15:04:05 GMT-0700 (MST)"),
			"url":     hs.URL,
			"xdomain": hs.XDomain,
		},
		"rooms": rooms,
	}
}

// shortID is the package's clientId: the engine id's first 12 characters.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func (h *Hub) newSession() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	h.sessMu.Lock()
	defer h.sessMu.Unlock()
	t := time.Now()
	if len(h.sessions) >= maxSessions {
		for k, exp := range h.sessions {
			if exp.Before(t) || len(h.sessions) >= maxSessions {
				delete(h.sessions, k)
			}
		}
	}
	h.sessions[id] = t.Add(sessionTTL)
	return id
}

func (h *Hub) sessionValid(id string) bool {
	h.sessMu.Lock()
	defer h.sessMu.Unlock()
	exp, ok := h.sessions[id]
	if ok && time.Now().After(exp) {
		delete(h.sessions, id)
		return false
	}
	return ok
}
