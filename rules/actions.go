package rules

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// scope is the list of names bound so far in a rule (by let, as). It is
// copied on extension, so a name bound inside for_each does not leak out.
type scope []string

func (s scope) with(name string) scope {
	return append(slices.Clip(s), name)
}

// verbSpec is one action verb: the verb key (its doc and the schema of its
// value) and the other keys it takes, its modifiers, each with its own doc
// because `as` or `key` mean something different for each verb. verbTable
// is the one list of action keys: verbs, modifiers and allActionKeys are
// read from it by the decoder and JSONSchema builds each action's schema
// from it (see field).
type verbSpec struct {
	field
	mods []field
}

// ifField is the condition every action takes.
var ifField = field{"if", "Run this action only when the condition is true.", condValue("data != nil"), false}

// verbTable lists the verbs in the order of the README's reference; the
// order of each verb's modifiers is the one "has no effect here (it takes
// ...)" prints.
var verbTable = []verbSpec{
	{field{"set_data", "`{KEY: TEMPLATE}`: write the sender's socket data (`socket.data.KEY`, `socket_data(id).KEY`); nil deletes.",
		bindingsValue(map[string]any{"name": "data.name"}), false},
		[]field{ifField}},
	{field{"let", "`{NAME: TEMPLATE}`: bind names for the following actions.",
		bindingsValue(map[string]any{"room": "data.roomId"}), false},
		[]field{ifField}},
	{field{"join", "Join the room this expression names.", exprValue("data.roomId"), false},
		[]field{ifField,
			{"as", "Bind this name to the member ids before the join, taken atomically with it.", nameValue("existing"), false},
			{"reject", "The answer to the sender alone when the join is refused (the socket is in `server.max_rooms_per_socket` rooms already, or the name is longer than `server.max_room_name`); the rule stops either way, as after a failed validation.",
				replyValue(), false}}},
	{field{"leave", "Leave the room this expression names; the remaining members get `#rtcio:peer-left`.", exprValue("data.roomId"), false},
		[]field{ifField,
			{"as", "Bind this name to the members that remain.", nameValue("remaining"), false}}},
	{field{"emit", "Emit this event; `to` says to whom (default: the sender).", emitEventValue("user-connected", EventInitOffer), false},
		[]field{ifField,
			{"to", "`sender` (default), `room` (the room except the sender), `room_all` (including it), `socket` (one id), `sender_rooms` (every room of the sender, each socket once).",
				obj("type", "string", "enum", targetNames, "default", TargetSender.String()), false},
			{"room", "The room, an expression; for `to: room` and `to: room_all` only.", exprValue("data.roomId"), false},
			{"socket", "The socket id, an expression; for `to: socket` only.", exprValue("data.target"), false},
			{"payload", "The payload, a template; without it the event's own arguments are forwarded verbatim.",
				templateValue(map[string]any{"id": "socket.id"}), false}}},
	{field{"ack", "Answer the client's acknowledgement callback with this template (the first answer wins).",
		templateValue(map[string]any{"ok": true}), false},
		[]field{ifField}},
	{field{"set", "Write an entry of this store: `store[key] = value`, or `store[key][field] = value`.", nameValue("media"), false},
		[]field{ifField,
			{"key", "The entry's key, an expression; defaults to the sender's id in a socket store, required in others.", exprValue("socket.id"), false},
			{"field", "Write one field of the entry: `store[key][field] = value`.", exprValue("data.kind"), false},
			{"value", "The value, a template; nil deletes.", templateValue(map[string]any{"mic": "data.mic"}), true}}},
	{field{"delete", "Remove an entry of this store, or one field of it.", nameValue("media"), false},
		[]field{ifField,
			{"key", "The entry's key, an expression; defaults to the sender's id in a socket store, required in others.", exprValue("socket.id"), false},
			{"field", "Remove only this field of the entry.", exprValue("data.kind"), false}}},
	{field{"for_each", "Run `do` once per item of this list (or per sorted key of a map).", exprValue("socket.rooms"), false},
		[]field{ifField,
			{"as", "The name bound to each item.", nameValue("item"), true},
			{"where", "Skip the items for which this condition is false.", condValue("item != socket.id"), false},
			{"do", "The actions run for each item.", actionsValue(), true}}},
	{field{"disconnect", "`true`: close the sender's connection.", obj("const", true), false},
		[]field{ifField}},
}

// verbs are the action keys; exactly one appears in each action.
var verbs = func() []string {
	out := make([]string, len(verbTable))
	for i, v := range verbTable {
		out[i] = v.name
	}
	return out
}()

// modifiers lists the other keys each verb accepts.
var modifiers = func() map[string][]string {
	out := make(map[string][]string, len(verbTable))
	for _, v := range verbTable {
		out[v.name] = keysOf(v.mods)
	}
	return out
}()

// allActionKeys is every key an action may have, verbs first, then the
// modifiers in the order verbTable first names them.
var allActionKeys = func() []string {
	keys := slices.Clone(verbs)
	for _, v := range verbTable {
		for _, m := range v.mods {
			if !slices.Contains(keys, m.name) {
				keys = append(keys, m.name)
			}
		}
	}
	return keys
}()

func (l *loader) actions(n *yaml.Node, sc scope, depth int) []Action {
	n = resolve(n)
	if depth > maxDepth {
		l.errf(n, "actions nested deeper than %d levels", maxDepth)
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		l.errf(n, "do must be a list of actions, got %s", kindName(n))
		return nil
	}
	var out []Action
	for _, item := range n.Content {
		a, bound := l.action(resolve(item), sc, depth)
		if a != nil {
			out = append(out, a)
		}
		for _, name := range bound {
			sc = sc.with(name)
		}
	}
	return out
}

// action reads one action and returns it with the names it binds for the
// actions after it.
func (l *loader) action(n *yaml.Node, sc scope, depth int) (Action, []string) {
	if !l.spend(n) {
		return nil, nil
	}
	ps := l.pairs(n, "an action")
	if ps == nil {
		return nil, nil
	}
	fields := map[string]*yaml.Node{}
	var verb *pair
	for i, p := range ps {
		k := p.key.Value
		switch {
		case slices.Contains(verbs, k):
			if verb != nil {
				l.errf(p.key, "an action has one verb; %q and %q are both here, split them into two list items", verb.key.Value, k)
				continue
			}
			verb = &ps[i]
		case slices.Contains(allActionKeys, k):
			fields[k] = p.val
		default:
			l.unknown(p.key, "action", allActionKeys)
		}
	}
	if verb == nil {
		l.errf(n, "an action needs one of %s", strings.Join(verbs, ", "))
		return nil, nil
	}
	v := verb.key.Value
	for _, p := range ps {
		k := p.key.Value
		if _, ok := fields[k]; ok && !slices.Contains(modifiers[v], k) {
			l.errf(p.key, "%s: field %q has no effect here (it takes %s)", v, k, strings.Join(modifiers[v], ", "))
		}
	}
	base := ActionBase{Pos: posOf(verb.key)}
	if c := fields["if"]; c != nil {
		base.If = l.compileBool(c, v+": if", sc)
	}
	val := verb.val
	switch v {
	case "set_data", "let":
		keys, values, bound := l.bindings(val, v, sc, v == "let")
		if v == "let" {
			return &Let{ActionBase: base, Keys: keys, Values: values}, bound
		}
		return &SetData{ActionBase: base, Keys: keys, Values: values}, nil
	case "join", "leave":
		room := l.compile(val, v, sc, false)
		as := l.bindName(fields["as"], v+": as", sc)
		var bound []string
		if as != "" {
			bound = []string{as}
		}
		if v == "join" {
			j := &Join{ActionBase: base, Room: room, As: as}
			if r := fields["reject"]; r != nil {
				j.Reject = l.reply(r, sc)
			}
			return j, bound
		}
		return &Leave{ActionBase: base, Room: room, As: as}, bound
	case "emit":
		return l.emit(base, val, fields, sc), nil
	case "ack":
		return &Ack{ActionBase: base, Value: l.template(val, "ack", sc, 0)}, nil
	case "set", "delete":
		return l.storeAction(base, v, val, fields, sc), nil
	case "for_each":
		fe := &ForEach{ActionBase: base, List: l.compile(val, "for_each", sc, false)}
		fe.As = l.bindName(fields["as"], "for_each: as", sc)
		if fields["as"] == nil {
			l.errf(verb.key, "for_each: missing field %q naming each item", "as")
		}
		inner := sc
		if fe.As != "" {
			inner = sc.with(fe.As)
		}
		if w := fields["where"]; w != nil {
			fe.Where = l.compileBool(w, "for_each: where", inner)
		}
		if fields["do"] == nil {
			l.errf(verb.key, "for_each: missing field %q", "do")
		} else {
			fe.Do = l.actions(fields["do"], inner, depth+1)
		}
		return fe, nil
	case "disconnect":
		if val.Kind != yaml.ScalarNode || val.Value != "true" {
			l.errf(val, "disconnect: write `disconnect: true`")
		}
		return &Disconnect{ActionBase: base}, nil
	}
	return nil, nil
}

// bindings reads `NAME: value` pairs of set_data and let.
func (l *loader) bindings(n *yaml.Node, verb string, sc scope, binds bool) ([]string, []*Template, []string) {
	var keys []string
	var values []*Template
	var bound []string
	for _, p := range l.pairs(n, verb) {
		name := p.key.Value
		if !isName(name) {
			l.errf(p.key, "%s: %q must be a letter followed by letters, digits or _", verb, name)
			continue
		}
		if binds {
			if msg := l.nameTaken(name, sc.withAll(bound...)); msg != "" {
				l.errf(p.key, "%s: %s", verb, msg)
				continue
			}
		}
		// Each let sees the names bound before it in the same action.
		t := l.template(p.val, verb+"."+name, sc.withAll(bound...), 0)
		if t == nil {
			continue
		}
		keys = append(keys, name)
		values = append(values, t)
		if binds {
			bound = append(bound, name)
		}
	}
	return keys, values, bound
}

func (s scope) withAll(names ...string) scope {
	out := slices.Clip(s)
	return append(out, names...)
}

func (l *loader) bindName(n *yaml.Node, what string, sc scope) string {
	if n == nil {
		return ""
	}
	name, ok := l.str(n, what)
	if !ok {
		return ""
	}
	if !isName(name) {
		l.errf(n, "%s: %q must be a letter followed by letters, digits or _", what, name)
		return ""
	}
	if msg := l.nameTaken(name, sc); msg != "" {
		l.errf(n, "%s: %s", what, msg)
		return ""
	}
	return name
}

// nameTaken explains why a new binding would hide something, or "".
func (l *loader) nameTaken(name string, sc scope) string {
	switch {
	case slices.Contains(envNames, name) || name == "vars":
		return "name " + quote(name) + " is built in; choose another"
	case isFunction(name):
		return "name " + quote(name) + " is a function; choose another"
	case slices.Contains(sc, name):
		return "name " + quote(name) + " is already bound in this rule"
	}
	return ""
}

func quote(s string) string { return `"` + s + `"` }

func (l *loader) emit(base ActionBase, val *yaml.Node, fields map[string]*yaml.Node, sc scope) Action {
	e := &Emit{ActionBase: base, To: TargetSender}
	if ev, ok := l.str(val, "emit"); ok {
		l.checkEmitted(val, ev)
		e.Event = ev
	}
	if to := fields["to"]; to != nil {
		name, _ := l.str(to, "emit: to")
		found := false
		for i, tn := range targetNames {
			if name == tn {
				e.To, found = Target(i), true
			}
		}
		if !found && name != "" {
			l.errf(to, "emit: to must be one of %s, got %q%s", strings.Join(targetNames, ", "), name, suggest(name, targetNames))
		}
	}
	needsRoom := e.To == TargetRoom || e.To == TargetRoomAll
	switch r := fields["room"]; {
	case r != nil && needsRoom:
		e.Room = l.compile(r, "emit: room", sc, false)
	case r != nil:
		l.errf(r, "emit: room has no effect with to: %s", e.To)
	case needsRoom:
		l.errf(val, "emit: to: %s needs room", e.To)
	}
	switch s := fields["socket"]; {
	case s != nil && e.To == TargetSocket:
		e.Socket = l.compile(s, "emit: socket", sc, false)
	case s != nil:
		l.errf(s, "emit: socket has no effect with to: %s", e.To)
	case e.To == TargetSocket:
		l.errf(val, "emit: to: socket needs socket (an id)")
	}
	if p := fields["payload"]; p != nil {
		e.Payload = l.template(p, "emit: payload", sc, 0)
	}
	return e
}

func (l *loader) storeAction(base ActionBase, verb string, val *yaml.Node, fields map[string]*yaml.Node, sc scope) Action {
	name, _ := l.str(val, verb)
	st := l.set.stores[name]
	if st == nil && name != "" {
		known := make([]string, 0, len(l.set.Stores))
		for _, s := range l.set.Stores {
			known = append(known, s.Name)
		}
		l.errf(val, "%s: unknown store %q%s", verb, name, suggest(name, known))
	}
	var key, field *Expr
	if k := fields["key"]; k != nil {
		key = l.compile(k, verb+": key", sc, false)
	} else if st != nil && st.Scope != ScopeSocket {
		l.errf(val, "%s: store %q has scope %s, so key is required", verb, name, st.Scope)
	}
	if f := fields["field"]; f != nil {
		field = l.compile(f, verb+": field", sc, false)
	}
	if verb == "delete" {
		return &DeleteStore{ActionBase: base, Store: st, Key: key, Field: field}
	}
	set := &SetStore{ActionBase: base, Store: st, Key: key, Field: field}
	if v := fields["value"]; v != nil {
		set.Value = l.template(v, "set: value", sc, 0)
	} else {
		l.errf(val, "set: missing field %q", "value")
	}
	return set
}

func isFunction(name string) bool {
	for _, f := range Functions {
		if f.Name == name {
			return true
		}
	}
	return false
}

// Action is one step of a rule. The concrete types below are the whole
// vocabulary; the router interprets them in order.
type Action interface {
	// Common returns the position and optional condition shared by every action.
	Common() *ActionBase
	// describe is the action in `rtcio-router check`'s one-line summary.
	describe() string
}

// ActionBase is what every action has: where it is written and an optional
// `if` that skips it when false.
type ActionBase struct {
	Pos Pos
	If  *Expr // nil: always
}

// Common implements Action.
func (b *ActionBase) Common() *ActionBase { return b }

// SetData writes fields of the sender's socket data, readable later as
// socket.data.NAME and, from other sockets, as socket_data(id).NAME.
type SetData struct {
	ActionBase
	Keys   []string
	Values []*Template
}

func (a *SetData) describe() string { return "set_data " + strings.Join(a.Keys, ",") }

// Let binds names for the rest of the rule, in order, so a value computed
// once can be used by several later actions.
type Let struct {
	ActionBase
	Keys   []string
	Values []*Template
}

func (a *Let) describe() string { return "let " + strings.Join(a.Keys, ",") }

// Join adds the sender to a room. As, if set, names the list of members
// before the join, taken atomically with it so that two sockets joining at
// once each see the other exactly once.
type Join struct {
	ActionBase
	Room *Expr
	As   string
	// Reject answers the sender when the join is refused by
	// Server.MaxRoomsPerSocket or Server.MaxRoomName; the rule then stops,
	// as after a failed validation. nil refuses silently.
	Reject *Reply
}

func (*Join) describe() string { return "join" }

// Leave removes the sender from a room. As, if set, names the members that
// remain.
type Leave struct {
	ActionBase
	Room *Expr
	As   string
}

func (*Leave) describe() string { return "leave" }

// Emit sends an event to a target. Payload nil forwards the incoming
// event's arguments verbatim.
type Emit struct {
	ActionBase
	Event   string
	To      Target
	Room    *Expr // TargetRoom, TargetRoomAll
	Socket  *Expr // TargetSocket
	Payload *Template
}

func (a *Emit) describe() string { return fmt.Sprintf("emit %s to %s", a.Event, a.To) }

// Ack answers the client's acknowledgement callback, if it sent one. Only the
// first answer of an event reaches the client.
type Ack struct {
	ActionBase
	Value *Template
}

func (*Ack) describe() string { return "ack" }

// SetStore writes store[key] (or store[key][field]).
type SetStore struct {
	ActionBase
	Store *Store
	Key   *Expr // nil: the sender's id (socket scope only)
	Field *Expr // nil: the whole entry
	Value *Template
}

func (a *SetStore) describe() string { return "set " + a.Store.Name }

// DeleteStore removes store[key] (or only store[key][field]).
type DeleteStore struct {
	ActionBase
	Store *Store
	Key   *Expr
	Field *Expr
}

func (a *DeleteStore) describe() string { return "delete " + a.Store.Name }

// ForEach runs Do once per item of a list, binding the item to As. Where,
// if set, skips the items for which it is false.
type ForEach struct {
	ActionBase
	List  *Expr
	As    string
	Where *Expr
	Do    []Action
}

func (a *ForEach) describe() string {
	return fmt.Sprintf("for_each %s [%s]", a.As, describeActions(a.Do))
}

// Disconnect closes the sender's connection, for example after repeated abuse.
type Disconnect struct {
	ActionBase
}

func (*Disconnect) describe() string { return "disconnect" }
