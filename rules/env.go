package rules

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm/runtime"
)

// Env is what an expression sees. It is a struct rather than a map so that a
// misspelt name or a type error is a positioned compile error at load time,
// not a surprise on the first event.
type Env struct {
	// Data is the event's first argument: the payload, as decoded JSON.
	Data any `expr:"data"`
	// Args is every argument of the event, without the ack callback.
	Args []any `expr:"args"`
	// Event is the event name, so one rule body can serve several events.
	Event string `expr:"event"`
	// Socket describes the sender.
	Socket *SocketInfo `expr:"socket"`
	// Stores reads the declared stores: expressions write stores.NAME[key]
	// and stores.NAME, which the compiler turns into reads of one entry or
	// one store through it (stores.go). Nil reads as no entries.
	Stores Stores `expr:"stores"`
	// Vars holds the names bound by `as` and `let`. Expressions write them
	// as bare names; the compiler rewrites them into this map.
	Vars map[string]any `expr:"vars"`
	// Environ is the process environment captured when the file was loaded,
	// so a secret can live outside the file.
	Environ map[string]string `expr:"env"`
}

// SocketInfo is the sender as expressions see it.
type SocketInfo struct {
	ID    string         `expr:"id"`
	Data  map[string]any `expr:"data"`  // fields written by set_data
	Rooms []string       `expr:"rooms"` // rooms joined, without the socket's own id room
	Auth  map[string]any `expr:"auth"`  // handshake auth object
	Query map[string]any `expr:"query"` // handshake query string, first value per key
	// Claims are the verified JWT claims (auth.jwt); empty without it.
	Claims map[string]any `expr:"claims"`
}

// Host answers the questions expressions ask about the live server. The
// router implements it; rules only compiles calls to it, which keeps this
// package free of socket.io.
type Host interface {
	Members(room string) []string
	RoomSize(room string) int
	SocketData(id string) map[string]any
	RoomsOf(id string) []string
	Connected(id string) bool
	// Now is the server clock, so config tests can fix it.
	Now() time.Time
}

// Function is one helper callable from expressions, as documented: its
// name, its signature and what it returns.
type Function struct{ Name, Sig, Doc string }

// Functions lists the helpers callable from expressions, for documentation
// and did-you-mean hints; it is read off hostFunctionTable.
var Functions = func() []Function {
	out := make([]Function, len(hostFunctionTable))
	for i, f := range hostFunctionTable {
		out[i] = f.Function
	}
	return out
}()

// hostFunction is one expression helper in full: its documentation, its
// typed signature (so the checker rejects a wrong argument at load time),
// and its implementation over a Host. A new helper is one entry here.
type hostFunction struct {
	Function
	typed any // new(func(string) int)
	bind  func(h Host) func(args ...any) (any, error)
}

// str is an argument of static type any that must be a string at run time.
func str(v any) (string, bool) { s, ok := v.(string); return s, ok }

// stringArg binds a helper of one string argument.
func stringArg(name string, fn func(h Host, s string) any) func(Host) func(...any) (any, error) {
	return func(h Host) func(...any) (any, error) {
		return func(p ...any) (any, error) {
			s, ok := str(p[0])
			if !ok {
				return nil, errArg(name, p[0])
			}
			return fn(h, s), nil
		}
	}
}

var hostFunctionTable = []hostFunction{
	{Function{"members", "members(room) []string", "ids of the sockets in room, in join order"}, new(func(string) []string),
		stringArg("members", func(h Host, room string) any { return h.Members(room) })},
	{Function{"room_size", "room_size(room) int", "number of sockets in room"}, new(func(string) int),
		stringArg("room_size", func(h Host, room string) any { return h.RoomSize(room) })},
	{Function{"socket_data", "socket_data(id) map", "socket data of another socket; nil if unknown"}, new(func(string) map[string]any),
		stringArg("socket_data", func(h Host, id string) any { return h.SocketData(id) })},
	{Function{"rooms_of", "rooms_of(id) []string", "rooms of another socket"}, new(func(string) []string),
		stringArg("rooms_of", func(h Host, id string) any { return h.RoomsOf(id) })},
	{Function{"connected", "connected(id) bool", "whether a socket id is connected"}, new(func(string) bool),
		stringArg("connected", func(h Host, id string) any { return h.Connected(id) })},
	{Function{"now_ms", "now_ms() int", "server time in Unix milliseconds"}, new(func() int),
		func(h Host) func(...any) (any, error) {
			return func(...any) (any, error) { return int(h.Now().UnixMilli()), nil }
		}},
	{Function{"unix", "unix() int", "server time in Unix seconds"}, new(func() int),
		func(h Host) func(...any) (any, error) {
			return func(...any) (any, error) { return int(h.Now().Unix()), nil }
		}},
	{Function{"hmac_sha1_base64", "hmac_sha1_base64(key, message) string", "base64 of HMAC-SHA1: TURN REST credentials (coturn use-auth-secret)"},
		new(func(string, string) string),
		func(Host) func(...any) (any, error) {
			return func(p ...any) (any, error) {
				key, ok1 := str(p[0])
				msg, ok2 := str(p[1])
				if !ok1 || !ok2 {
					return nil, errArg("hmac_sha1_base64", p[0])
				}
				mac := hmac.New(sha1.New, []byte(key))
				mac.Write([]byte(msg))
				return base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
			}
		}},
	{Function{"sha256_hex", "sha256_hex(s) string", "hex SHA-256 of a string, to compare secrets without storing them"}, new(func(string) string),
		stringArg("sha256_hex", func(_ Host, s string) any {
			sum := sha256.Sum256([]byte(s))
			return hex.EncodeToString(sum[:])
		})},
}

// envNames are the top-level names an expression may use, besides locals
// and functions; for did-you-mean hints.
var envNames = []string{"data", "args", "event", "socket", "stores", "env"}

// noHost answers every question with "nothing", for checking a file without
// a server.
type noHost struct{}

func (noHost) Members(string) []string          { return nil }
func (noHost) RoomSize(string) int              { return 0 }
func (noHost) SocketData(string) map[string]any { return nil }
func (noHost) RoomsOf(string) []string          { return nil }
func (noHost) Connected(string) bool            { return false }
func (noHost) Now() time.Time                   { return time.Now() }

// hostFunctions binds the expression helpers to h, as expr options and by
// name for the closure compiler (fast.go). Typed signatures let the
// checker reject a wrong argument at load time; at run time an argument of
// static type any is checked here, and a wrong one is a run error.
func hostFunctions(h Host) ([]expr.Option, map[string]func(...any) (any, error)) {
	funcs := map[string]func(...any) (any, error){}
	def := func(name string, fn func(...any) (any, error), sig any) expr.Option {
		funcs[name] = fn
		return expr.Function(name, fn, sig)
	}
	opts := []expr.Option{
		def(fetchFunc, func(p ...any) (any, error) { return fetch(p[0], p[1]) }, new(func(any, any) any)),
	}
	for _, f := range hostFunctionTable {
		opts = append(opts, def(f.Name, f.bind(h), f.typed))
	}
	return opts, funcs
}

type argError struct {
	fn  string
	got any
}

func (e argError) Error() string {
	return "argument of " + e.fn + " must be a string, got " + typeName(e.got)
}

func errArg(fn string, got any) error { return argError{fn, got} }

// typeName names a decoded JSON value's type the way expressions' type()
// does, for messages users read.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case bool:
		return "bool"
	case float64, int:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "map"
	default:
		return "value"
	}
}

// fetchFunc is the function the compiler puts in place of a member access
// on a JSON value (see patcher); not meant to be written by hand.
const fetchFunc = "$fetch"

// fetch is `from.key` / `from[key]` for the values rules see: decoded JSON
// (maps and lists), bound names and store entries. A map read returns the
// stored interface as it is, where expr's reflective fetch allocates a copy
// on every access; anything else falls back to expr's own fetch, so the
// semantics (negative indices, missing keys are nil, nil is an error) are
// expr's.
func fetch(from, key any) (any, error) {
	switch m := from.(type) {
	case map[string]any:
		if k, ok := key.(string); ok {
			return m[k], nil
		}
	case []any:
		if i, ok := key.(int); ok {
			if i < 0 {
				i += len(m)
			}
			if i >= 0 && i < len(m) {
				return m[i], nil
			}
		}
	case nil:
		return nil, fmt.Errorf("cannot fetch %v from nil", key)
	}
	return exprFetch(from, key)
}

// exprFetch is expr's reflective fetch with its panics turned into errors.
func exprFetch(from, key any) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return runtime.Fetch(from, key), nil
}
