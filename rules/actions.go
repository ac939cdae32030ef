package rules

import (
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

// verbs are the action keys; exactly one appears in each action. modifiers
// lists the other keys each verb accepts.
var verbs = []string{"set_data", "let", "join", "leave", "emit", "ack", "set", "delete", "for_each", "disconnect"}

var modifiers = map[string][]string{
	"set_data":   {"if"},
	"let":        {"if"},
	"join":       {"if", "as"},
	"leave":      {"if", "as"},
	"emit":       {"if", "to", "room", "socket", "payload"},
	"ack":        {"if"},
	"set":        {"if", "key", "field", "value"},
	"delete":     {"if", "key", "field"},
	"for_each":   {"if", "as", "where", "do"},
	"disconnect": {"if"},
}

var allActionKeys = func() []string {
	keys := slices.Clone(verbs)
	for _, m := range modifiers {
		for _, k := range m {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
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
			return &Join{ActionBase: base, Room: room, As: as}, bound
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
