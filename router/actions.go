package router

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/rtcio/rtcio-router/router/internal/sio"
	"github.com/rtcio/rtcio-router/rules"
)

// run is one rule applied to one event. It exists only while state.mu is
// held.
type run struct {
	r     *Router
	c     *conn
	set   *rules.Set // the event's snapshot; nil outside rules (limits, auth)
	rule  *rules.Rule
	env   *rules.Env
	reply func(any) // the client's ack callback; nil if it sent none
	acked *bool
	// hangUp is set by the disconnect action; the connection is closed
	// after the lock is released.
	hangUp *bool
	// evaluator, when set, runs the expressions instead of the state's
	// shared one: for the handshake, which holds the state lock only to
	// read, so handshakes evaluate concurrently.
	evaluator *rules.Evaluator
	// fwd is what an emit without payload sends; nil sends env.Args.
	fwd *forward
	// outcome is how the rule stopped short, for its metrics.
	outcome ruleOutcome
}

// forward is what an emit without payload sends: the event's arguments
// as the client wrote them (sio.Event.Verbatim), made by the first emit
// that forwards.
type forward struct {
	ev  *sio.Event // valid while the event is handled
	out []any
}

// args returns the arguments to forward.
func (f *forward) args() []any {
	if f.out == nil {
		f.out = f.ev.Verbatim()
	}
	return f.out
}

// errSkip stops a rule without it being an error.
var errSkip = errors.New("skip")

// runRules applies every rule for event, in file order, and reports
// whether a rule asked to close the sender's connection, which the caller
// does after releasing the lock. Callers hold state.mu.
func (r *Router) runRules(set *rules.Set, c *conn, event string, data any, args []any, reply func(any)) (hangUp bool) {
	return r.apply(set, c, event, data, args, reply, nil)
}

// runEvent is runRules for a client's event: emits without payload
// forward its arguments as the client wrote them.
func (r *Router) runEvent(set *rules.Set, c *conn, ev *sio.Event) (hangUp bool) {
	var data any
	if len(ev.Args) > 0 {
		data = ev.Args[0]
	}
	return r.apply(set, c, ev.Name, data, ev.Args, ev.Reply, ev)
}

// apply runs the rules for event; from is the client's event, nil for
// the router's own hooks.
func (r *Router) apply(set *rules.Set, c *conn, event string, data any, args []any, reply func(any), from *sio.Event) (hangUp bool) {
	rs := set.For(event)
	if len(rs) == 0 {
		return false
	}
	if args == nil {
		args = noArgs
	}
	r.st.beginEvent()
	// One event at a time holds the lock, so its environment and run live
	// in the state's scratch space instead of being allocated per event.
	sc := &r.st.scratch
	sc.sock = rules.SocketInfo{ID: c.id, Data: c.data, Rooms: c.rooms, Auth: c.auth, Query: c.query, Claims: c.claims}
	sc.env = rules.Env{Data: data, Args: args, Event: event, Socket: &sc.sock, Stores: host{r.st}, Environ: set.Environ}
	sc.acked, sc.hangUp = false, false
	var fwd *forward
	if len(args) > 0 && from != nil {
		sc.fwd = forward{ev: from}
		fwd = &sc.fwd
	}
	var rm *ruleMetrics
	if r.m != nil {
		rm = r.m.forSet(set)
	}
	for _, rule := range rs {
		sc.env.Vars = nil
		sc.run = run{r: r, c: c, set: set, rule: rule, env: &sc.env, reply: reply, acked: &sc.acked, hangUp: &sc.hangUp, fwd: fwd}
		var start time.Time
		if rm != nil {
			start = time.Now()
		}
		err := sc.run.apply()
		if err != nil && err != errSkip {
			sc.run.outcome = outcomeFailed
			r.log.Debug("rule stopped", "rule", rule.Name, "event", event, "socket_id", c.id, "err", err)
		}
		if rm != nil {
			if s := rm.rules[rule]; s != nil {
				s.ruleRan(sc.run.outcome, start)
			}
		}
	}
	hangUp = sc.hangUp
	// Hold no payload past the event.
	sc.run, sc.env, sc.sock, sc.fwd = run{}, rules.Env{}, rules.SocketInfo{}, forward{}
	return hangUp
}

// noArgs is the argument list of an event sent without arguments; shared,
// since expressions cannot change it.
var noArgs = []any{}

// scratch is runRules' working space, reused by every event under
// state.mu.
type scratch struct {
	sock          rules.SocketInfo
	env           rules.Env
	run           run
	fwd           forward
	acked, hangUp bool
}

func (c *conn) info() *rules.SocketInfo {
	return &rules.SocketInfo{ID: c.id, Data: c.data, Rooms: c.rooms, Auth: c.auth, Query: c.query, Claims: c.claims}
}

func (x *run) apply() error {
	for _, chk := range x.rule.Validate {
		ok, err := x.boolean(chk.Cond)
		if ok {
			continue
		}
		x.stopped(chk.Reject)
		if chk.Reject != nil {
			x.reject(chk.Reject)
		}
		if err != nil {
			return fmt.Errorf("validate %s: %w", at(x.r, chk.Cond), err)
		}
		return errSkip
	}
	return x.actions(x.rule.Actions)
}

// stopped records that a check stopped the rule, answered by rej if any.
func (x *run) stopped(rej *rules.Reply) {
	x.outcome = outcomeDropped
	if rej != nil {
		x.outcome = outcomeRejected
	}
}

func at(r *Router, e *rules.Expr) string {
	return fmt.Sprintf("%s:%d:%d", r.Rules().File, e.Pos.Line, e.Pos.Col)
}

func (x *run) reject(rep *rules.Reply) {
	if rep.Emit != "" {
		var payload []any
		if rep.Payload != nil {
			v, err := x.build(rep.Payload)
			if err != nil {
				x.r.log.Debug("reject payload failed", "rule", x.rule.Name, "socket_id", x.c.id, "err", err)
				return
			}
			payload = []any{v}
		}
		if err := x.r.st.wire.sendTo(x.c, rep.Emit, payload); err != nil {
			x.r.log.Debug("reject emit failed", "rule", x.rule.Name, "socket_id", x.c.id, "err", err)
		}
	}
	if rep.Ack != nil {
		if v, err := x.build(rep.Ack); err == nil {
			x.answer(v)
		}
	}
}

func (x *run) answer(v any) {
	if x.reply == nil || *x.acked {
		return
	}
	*x.acked = true
	x.reply(v)
}

func (x *run) eval(e *rules.Expr) (any, error) {
	if x.evaluator != nil {
		return x.evaluator.Eval(e, x.env)
	}
	return x.r.st.evaluator.Eval(e, x.env)
}

func (x *run) boolean(e *rules.Expr) (bool, error) {
	v, err := x.eval(e)
	if err != nil {
		return false, err
	}
	b, _ := v.(bool)
	return b, nil
}

// str evaluates an expression that must name something: a room or a
// socket id.
func (x *run) str(e *rules.Expr, what string) (string, error) {
	v, err := x.eval(e)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok || s == "" {
		return "", fmt.Errorf("%s at %s must be a non-empty string, got %s", what, at(x.r, e), describe(v))
	}
	return s, nil
}

func describe(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%T", v)
}

// build evaluates a payload template into a JSON-safe value. Object fields
// whose expression gives nil are left out, as JavaScript leaves out
// undefined; a field written as YAML null is kept, and sent as null.
func (x *run) build(t *rules.Template) (any, error) {
	switch t.Kind {
	case rules.TemplateString:
		return t.Const, nil
	case rules.TemplateNull:
		return nil, nil
	case rules.TemplateObject:
		m := make(map[string]any, len(t.Keys))
		for i, k := range t.Keys {
			f := t.Fields[i]
			v, err := x.build(f)
			if err != nil {
				return nil, err
			}
			if v != nil || f.Kind == rules.TemplateNull {
				m[k] = v
			}
		}
		return m, nil
	case rules.TemplateArray:
		a := make([]any, len(t.Items))
		for i, item := range t.Items {
			v, err := x.build(item)
			if err != nil {
				return nil, err
			}
			a[i] = v
		}
		return a, nil
	default:
		v, err := x.eval(t.Expr)
		if err != nil {
			return nil, err
		}
		return jsonSafe(v), nil
	}
}

func (x *run) bind(name string, v any) {
	if x.env.Vars == nil {
		x.env.Vars = map[string]any{}
	}
	x.env.Vars[name] = v
}

func (x *run) actions(list []rules.Action) error {
	for _, a := range list {
		if cond := a.Common().If; cond != nil {
			ok, err := x.boolean(cond)
			if err != nil {
				return fmt.Errorf("if %s: %w", at(x.r, cond), err)
			}
			if !ok {
				continue
			}
		}
		if err := x.do(a); err != nil {
			return err
		}
	}
	return nil
}

func (x *run) do(a rules.Action) error {
	st := x.r.st
	switch a := a.(type) {
	case *rules.SetData:
		values := make([]any, len(a.Values))
		for i, t := range a.Values {
			v, err := x.build(t)
			if err != nil {
				return err
			}
			values[i] = v
		}
		x.r.st.setData(x.c, a.Keys, values)
		x.env.Socket.Data = x.c.data
	case *rules.Let:
		for i, t := range a.Values {
			v, err := x.build(t)
			if err != nil {
				return err
			}
			x.bind(a.Keys[i], v)
		}
	case *rules.Join:
		room, err := x.str(a.Room, "join room")
		if err != nil {
			return err
		}
		if why := x.joinRefused(room); why != "" {
			x.r.log.Debug("join refused", "rule", x.rule.Name, "socket_id", x.c.id, "reason", why)
			x.stopped(a.Reject)
			if a.Reject != nil {
				x.reject(a.Reject)
			}
			return errSkip
		}
		before, _ := st.join(x.c, room)
		x.env.Socket.Rooms = x.c.rooms
		if a.As != "" {
			x.bind(a.As, before)
		}
	case *rules.Leave:
		room, err := x.str(a.Room, "leave room")
		if err != nil {
			return err
		}
		wasIn := slices.Contains(x.c.rooms, room)
		remaining := st.leave(x.c, room)
		x.env.Socket.Rooms = x.c.rooms
		if wasIn && len(remaining) > 0 {
			// Leaving is hanging up on everyone in the room: like a
			// disconnect, it tells them to drop their peer connections.
			if err := st.wire.send([]string{room}, x.c.id, rules.EventPeerLeft, []any{map[string]any{"id": x.c.id}}); err != nil {
				return fmt.Errorf("peer-left: %w", err)
			}
		}
		if a.As != "" {
			x.bind(a.As, remaining)
		}
	case *rules.Emit:
		return x.emit(a)
	case *rules.Ack:
		v, err := x.build(a.Value)
		if err != nil {
			return err
		}
		x.answer(v)
	case *rules.SetStore:
		return x.setStore(a)
	case *rules.DeleteStore:
		return x.deleteStore(a)
	case *rules.ForEach:
		return x.forEach(a)
	case *rules.Disconnect:
		*x.hangUp = true
	default:
		return fmt.Errorf("unknown action %T", a)
	}
	return nil
}

// joinRefused says why the sender may not join room, or "" if it may:
// server.max_room_name and server.max_rooms_per_socket bound what one
// socket can make the server hold. Joining a room it is already in is
// never refused.
func (x *run) joinRefused(room string) string {
	set := x.set
	if set == nil {
		set = x.r.Rules()
	}
	srv := &set.Server
	if srv.MaxRoomName > 0 && len(room) > srv.MaxRoomName {
		return "room name longer than server.max_room_name"
	}
	if srv.MaxRoomsPerSocket > 0 && len(x.c.rooms) >= srv.MaxRoomsPerSocket {
		if !x.r.st.inRoom(room, x.c.id) {
			return "socket in server.max_rooms_per_socket rooms already"
		}
	}
	return ""
}

func (x *run) emit(a *rules.Emit) error {
	// Without a payload the event's own arguments are forwarded as they
	// came, however many there were, as a relay in socket.io would: with
	// the client's JSON where the transport kept it, so objects keep their
	// key order (Go maps would sort it).
	payload := x.env.Args
	switch {
	case a.Payload != nil:
		v, err := x.build(a.Payload)
		if err != nil {
			return err
		}
		payload = []any{v}
	case x.fwd != nil:
		payload = x.fwd.args()
	}
	var rooms []string
	except := ""
	var to *conn // one socket: sent directly, without the broadcast machinery
	switch a.To {
	case rules.TargetSender:
		to = x.c
	case rules.TargetRoom, rules.TargetRoomAll:
		room, err := x.str(a.Room, "emit room")
		if err != nil {
			return err
		}
		rooms = []string{room}
		if a.To == rules.TargetRoom {
			except = x.c.id
		}
	case rules.TargetSocket:
		id, err := x.str(a.Socket, "emit socket")
		if err != nil {
			return err
		}
		if to = x.r.st.socket(id); to == nil {
			return nil // gone, or never was: nothing to deliver
		}
	case rules.TargetSenderRooms:
		if len(x.c.rooms) == 0 {
			return nil
		}
		rooms, except = x.c.rooms, x.c.id
	}
	var err error
	if to != nil {
		err = x.r.st.wire.sendTo(to, a.Event, payload)
	} else {
		err = x.r.st.wire.send(rooms, except, a.Event, payload)
	}
	if err != nil {
		return fmt.Errorf("emit %q: %w", a.Event, err)
	}
	return nil
}

// storeKey resolves the entry an action addresses: the given key, or the
// sender's id in a socket-scoped store.
func (x *run) storeKey(st *rules.Store, key *rules.Expr) (string, error) {
	if key == nil {
		return x.c.id, nil
	}
	return x.str(key, "store "+st.Name+" key")
}

func (x *run) setStore(a *rules.SetStore) error {
	key, err := x.storeKey(a.Store, a.Key)
	if err != nil {
		return err
	}
	v, err := x.build(a.Value)
	if err != nil {
		return err
	}
	if a.Field == nil {
		x.r.st.storeSet(a.Store.Name, key, v)
		return nil
	}
	field, err := x.str(a.Field, "store "+a.Store.Name+" field")
	if err != nil {
		return err
	}
	x.r.st.storeSetField(a.Store.Name, key, field, v)
	return nil
}

func (x *run) deleteStore(a *rules.DeleteStore) error {
	key, err := x.storeKey(a.Store, a.Key)
	if err != nil {
		return err
	}
	if a.Field == nil {
		x.r.st.storeDelete(a.Store.Name, key)
		return nil
	}
	field, err := x.str(a.Field, "store "+a.Store.Name+" field")
	if err != nil {
		return err
	}
	x.r.st.storeDeleteField(a.Store.Name, key, field)
	return nil
}

func (x *run) forEach(a *rules.ForEach) error {
	v, err := x.eval(a.List)
	if err != nil {
		return err
	}
	var items []any
	switch list := v.(type) {
	case nil:
		return nil
	case []any:
		items = list
	case []string:
		items = make([]any, len(list))
		for i, s := range list {
			items[i] = s
		}
	case map[string]any:
		keys := slices.Sorted(maps.Keys(list))
		items = make([]any, len(keys))
		for i, k := range keys {
			items[i] = k
		}
	default:
		return fmt.Errorf("for_each at %s: cannot iterate over %T", at(x.r, a.List), v)
	}
	for _, item := range items {
		x.bind(a.As, item)
		if a.Where != nil {
			ok, err := x.boolean(a.Where)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
		}
		if err := x.actions(a.Do); err != nil {
			return err
		}
	}
	return nil
}
