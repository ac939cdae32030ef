package rules

import (
	"time"

	"github.com/expr-lang/expr/vm"
)

// Set is one compiled, immutable rtcio.yaml. The router swaps whole Sets, so
// an event is always handled entirely under one version of the rules.
type Set struct {
	File   string
	Server Server
	Relay  Relay
	Limits Limits
	Auth   Auth
	// Cluster is the cluster: section (cluster.go); zero without one.
	Cluster Cluster
	// Metrics is the metrics: section (metrics.go).
	Metrics Metrics
	// Admin is the admin: section (admin.go); disabled without one.
	Admin  Admin
	Stores []*Store // in file order
	Rules  []*Rule  // in file order
	// Environ is the environment captured at load, exposed as env.NAME.
	Environ map[string]string

	byEvent map[string][]*Rule
	stores  map[string]*Store
}

// For returns the rules that handle event, in file order, or nil. It is the
// dispatcher's only lookup per event, so it is a single map read.
func (s *Set) For(event string) []*Rule { return s.byEvent[event] }

// Store returns the declared store called name, or nil.
func (s *Set) Store(name string) *Store { return s.stores[name] }

// Len is the number of rules, for logs and summaries.
func (s *Set) Len() int { return len(s.Rules) }

// Server holds the wire settings of the listening socket.io server. They come
// from the file so that one file describes a whole deployment.
type Server struct {
	Listen       string        // host:port; PORT and --addr override it
	Path         string        // socket.io path, "/socket.io/"
	Origins      []string      // CORS allow-list; "*" allows any origin
	MaxPayload   int64         // bytes in one message (maxHttpBufferSize)
	PingInterval time.Duration // engine.io heartbeat
	PingTimeout  time.Duration // engine.io heartbeat
	MaxOutgoing  int           // packets queued to one client before it is dropped as too slow
	MaxPending   int           // events queued from one client before it is disconnected as a flood
	// MaxRoomsPerSocket and MaxRoomName bound what one socket may hold:
	// a join past either is refused (Join.Reject). Unlike the rest of
	// Server they apply live: a reload changes them for the next join.
	MaxRoomsPerSocket int
	MaxRoomName       int // bytes
	// Recovery is how long a socket whose transport dropped is kept (id,
	// rooms, data, stores, missed events) for its client to come back; 0 is
	// off, and a dropped transport is a disconnect at once.
	Recovery time.Duration
	// RecoveryMaxEvents caps the events kept for one suspended session in
	// a cluster, where they are kept in Redis: a client that missed more
	// cannot be replayed what it missed in order, so its session is
	// cleaned up as a normal disconnect instead of recovered.
	RecoveryMaxEvents int
	// LeanWebSocket serves WebSocket-first clients without the library's
	// per-connection objects (router/internal/sio/lean.go); with Recovery
	// on it does not apply.
	LeanWebSocket bool
}

// Relay configures the hard-wired #rtcio:message relay.
type Relay struct {
	// SharedRoomOnly forwards an envelope only to a socket that shares a room
	// with the sender, so a client cannot message arbitrary socket ids.
	SharedRoomOnly bool
}

// Scope says when a store's entries are dropped.
type Scope int

// The scopes of a store. The key of a socket store is a socket id and its
// entry goes when that socket disconnects; the key of a room store is a room
// name and its entry goes when the room empties; global entries stay until a
// rule deletes them.
const (
	ScopeSocket Scope = iota
	ScopeRoom
	ScopeGlobal
)

var scopeNames = []string{"socket", "room", "global"}

func (s Scope) String() string { return scopeNames[s] }

// Store is a named key/value map declared in the file. Stores outlive rule
// sets: a reload keeps the values of a store whose name and scope stay.
type Store struct {
	Name  string
	Scope Scope
	Pos   Pos
}

// Hook events are lifecycle moments rather than client messages. Clients
// cannot send them: the official client refuses to emit these names and the
// router drops them on the wire.
const (
	HookConnect       = "connect"
	HookDisconnecting = "disconnecting"
)

// Rule is what happens when one event arrives: checks first, then actions in
// order.
type Rule struct {
	Name     string // the rule's name, or its event
	Event    string
	Pos      Pos
	Validate []*Check
	Actions  []Action
}

// Check is one validation condition. When it is false (or fails to run) the
// rule stops; Reject says what the sender hears, nil meaning nothing.
type Check struct {
	Cond   *Expr
	Reject *Reply
}

// Reply answers only the sender: an event, an ack value, or both.
type Reply struct {
	Emit    string    // event name; empty for none
	Payload *Template // nil: no payload
	Ack     *Template // nil: the ack callback is not answered
}

// Expr is one compiled expression with its place in the file. Programs are
// read-only and shared by every goroutine that runs them.
type Expr struct {
	Src     string
	Pos     Pos
	program *vm.Program // run by an Evaluator
	fast    evalFn      // the same computation as Go closures, when possible (fast.go)
}

// Template builds an outgoing value. A YAML mapping becomes an object whose
// values are templates, a sequence an array, a quoted scalar a literal
// string, a null scalar (`null`, `~`, or nothing) JSON null, and any other
// scalar one expression; this lets payloads be written as ordinary YAML,
// with `code: "room-full"` meaning the string. An object field whose
// expression gives nil is left out, as JavaScript leaves out undefined; a
// field written as null is sent as null.
type Template struct {
	Expr   *Expr       // scalar
	Const  string      // quoted scalar
	Keys   []string    // mapping keys, in file order
	Fields []*Template // mapping values, parallel to Keys
	Items  []*Template // sequence items
	Kind   TemplateKind
}

// TemplateKind tells which field of a Template is in use.
type TemplateKind int

// The kinds of Template.
const (
	TemplateExpr TemplateKind = iota
	TemplateObject
	TemplateArray
	TemplateString
	TemplateNull // a YAML null: JSON null, kept in objects
)

// Target names who receives an emit.
type Target int

// The targets of an emit. TargetRoom excludes the sender, as socket.to(room)
// does in socket.io; TargetRoomAll includes it, as io.to(room) does.
const (
	TargetSender      Target = iota // only the socket that sent the event
	TargetRoom                      // a room, except the sender
	TargetRoomAll                   // a room, including the sender
	TargetSocket                    // one socket by id
	TargetSenderRooms               // every room the sender is in, except the sender, each socket once
)

var targetNames = []string{"sender", "room", "room_all", "socket", "sender_rooms"}

func (t Target) String() string { return targetNames[t] }
