package rules

import (
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"gopkg.in/yaml.v3"
)

// Options are what a load needs besides the file.
type Options struct {
	// Host answers members(), socket_data() and friends at run time. Nil
	// binds them to an empty server, which is enough to check a file.
	Host Host
	// Environ is the environment exposed as env.NAME. Nil captures
	// os.Environ() at load time.
	Environ map[string]string
}

// Defaults of the server section, the same as the reference Node server's.
const (
	DefaultListen       = ":3001"
	DefaultPath         = "/socket.io/"
	DefaultMaxPayload   = 64 << 10
	DefaultPingInterval = 25 * time.Second
	DefaultPingTimeout  = 20 * time.Second
	DefaultMaxOutgoing  = 4096
	DefaultMaxPending   = 1024
	// DefaultMaxRoomsPerSocket bounds the rooms one socket may be in: a
	// video call app keeps a socket in one or a few rooms, and each room
	// costs memory and work at disconnect, so a client joining thousands of
	// rooms is an attack, not a use.
	DefaultMaxRoomsPerSocket = 100
	// DefaultMaxRoomName bounds a room name in bytes: room names are ids
	// and slugs, while a 64 KiB name multiplied by the rooms of a socket
	// would hold megabytes for one client.
	DefaultMaxRoomName = 256
	// DefaultRecoveryMaxEvents bounds the events kept in Redis for one
	// suspended socket: a signaling client away for a minute misses a few
	// dozen (offers, candidates, joins); a thousand bounds a runaway sender
	// at well under a megabyte per session.
	DefaultRecoveryMaxEvents = 1000
)

// maxDepth bounds nesting in templates and actions, so a hostile or broken
// file cannot recurse without end.
const maxDepth = 32

// Load reads and compiles the file at path. It is the only way the server,
// `check` and reload get a Set, so all three agree on what is valid.
func Load(path string, opts Options) (*Set, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	return Parse(path, src, opts)
}

// Parse compiles src, naming it name in errors. It returns every problem it
// finds as Errors, sorted by position.
func Parse(name string, src []byte, opts Options) (*Set, error) {
	if opts.Host == nil {
		opts.Host = noHost{}
	}
	if opts.Environ == nil {
		opts.Environ = environ()
	}
	l := &loader{
		Walker: NewWalker(name, src),
		lines:  strings.Split(string(src), "\n"),
		set: &Set{
			File:    name,
			Environ: opts.Environ,
			byEvent: map[string][]*Rule{},
			stores:  map[string]*Store{},
		},
	}
	hostOpts, funcs := hostFunctions(opts.Host)
	storeOpts, storeFuncs := storeFunctions(l.set)
	maps.Copy(funcs, storeFuncs)
	l.exprOpts = append([]expr.Option{expr.Env(Env{}), expr.MaxNodes(2000)}, hostOpts...)
	l.exprOpts = append(l.exprOpts, storeOpts...)
	l.fast = &fastCompiler{funcs: funcs}
	doc, ok := l.Document()
	if !ok {
		return nil, l.errs
	}
	l.document(doc)
	if len(l.errs) > 0 {
		return nil, l.errs.sorted()
	}
	return l.set, nil
}

func environ() map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// loader walks the YAML tree by hand so that every key keeps its position
// and every problem is collected rather than the first one returned. The
// generic part of the walk (positions, errors, mappings, aliases, the visit
// budget, scalar readers) is the embedded Walker, shared with configtest.
type loader struct {
	*Walker
	lines    []string
	set      *Set
	exprOpts []expr.Option
	fast     *fastCompiler
}

func (l *loader) integer(n *yaml.Node, what string, min int64) int64 {
	if n.Kind == yaml.ScalarNode {
		if v, err := parseSize(n.Value); err == nil && v >= min {
			return v
		}
	}
	l.errf(n, "%s must be a whole number of at least %d, got %s", what, min, kindName(n))
	return 0
}

// parseSize reads a byte count such as 65536, 64KiB or 1MiB.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"KB", 1000}, {"MB", 1000 * 1000}} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > (1<<40)/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return v * mult, nil
}

// durationOrZero is duration for settings whose documented default is
// 0s (off, or no allowance): writing that default must not be an error.
func (l *loader) durationOrZero(n *yaml.Node, what string) time.Duration {
	if n.Kind == yaml.ScalarNode {
		if d, err := time.ParseDuration(n.Value); err == nil && d == 0 {
			return 0
		}
	}
	return l.duration(n, what)
}

func (l *loader) strings(n *yaml.Node, what string) []string {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		return []string{n.Value}
	}
	if n.Kind != yaml.SequenceNode {
		l.errf(n, "%s must be a list of strings, got %s", what, kindName(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for _, item := range n.Content {
		if s, ok := l.str(resolve(item), what+" item"); ok {
			out = append(out, s)
		}
	}
	return out
}

// field is one key the decoder accepts in a mapping of rtcio.yaml, with
// what JSONSchema says of it: doc is the hover text editors show (the
// README's wording), value the JSON Schema of its value, required whether
// the decoder reports it missing.
//
// The tables of fields (topFields, serverFields... and verbTable in
// actions.go) are the one list of the file's keys. The decoder takes its
// known keys from them (the did-you-mean hints of "unknown field") and
// JSONSchema builds the schema's properties from them, so the two cannot
// drift; schema_test.go also checks that every `case "KEY":` of the
// decoder's switches below is in the table of its level, and the other way
// round. Adding a key means a case in the switch and a line in the table.
type field struct {
	name     string
	doc      string
	value    schema
	required bool
}

// keysOf lists the names of a table, in order, for "unknown field" hints.
func keysOf(fields []field) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.name
	}
	return out
}

// topFields are the keys of the file itself, read by document.
var topFields = []field{
	{"version", "File format version: `1` (optional; the only version).", obj("const", 1), false},
	{"server", "The listener's settings, fixed at start-up (a reload that changes them is refused), and the per-socket bounds, which apply live.", object(serverFields), false},
	{"relay", "The built-in `#rtcio:message` relay.", object(relayFields), false},
	{"auth", "Who may connect: a JWT on every connection and conditions on the handshake; a refused client gets a connect_error.", object(authFields), false},
	{"cluster", "Several nodes acting as one server on Redis; leave it out for one process with its state in memory.", object(clusterFields), false},
	{"admin", "The socket.io Admin UI: the `/admin` namespace of @socket.io/admin-ui 0.5.1 and the built UI under `/admin/`, behind a bcrypt-hashed password; fixed at start-up.", object(adminFields), false},
	{"metrics", "Prometheus metrics and Go profiles: where they are served; fixed at start-up (a reload that changes them is refused).", object(metricsFields), false},
	{"limits", "Per-socket rate limits (token buckets): for every event, the relay, and single events; excess events are dropped, floods disconnected.", object(limitsFields), false},
	{"stores", "Named key/value maps: read as `stores.NAME[key]`, written by the `set` and `delete` actions.",
		obj("type", "object", "propertyNames", obj("pattern", namePattern), "additionalProperties", object(storeFields)), false},
	{"rules", "The rules: each handles one event, checking `validate` then running `do`; several rules may handle the same event and run in file order.",
		obj("type", "array", "items", object(ruleFields)), true},
}

// topKeys are the names in topFields, for "unknown field" hints.
var topKeys = keysOf(topFields)

func (l *loader) document(doc *yaml.Node) {
	if len(doc.Content) == 0 {
		l.errAt(Pos{1, 1}, "the file is empty: it needs at least a rules list")
		return
	}
	root := resolve(doc.Content[0])
	l.set.Server = DefaultServer()
	l.set.Relay = Relay{SharedRoomOnly: true}
	l.set.Cluster = Cluster{Prefix: DefaultClusterPrefix}
	l.set.Limits = defaultLimits()
	l.set.Admin = Admin{Auth: AdminAuthBasic, Username: DefaultAdminUsername, UI: true}
	l.set.Metrics = DefaultMetrics()
	var rulesNode, limitsNode, authNode *yaml.Node
	for _, p := range l.pairs(root, "the file") {
		switch p.key.Value {
		case "version":
			if p.val.Value != "1" {
				l.errf(p.val, "version must be 1, got %s", kindName(p.val))
			}
		case "server":
			l.server(p.val)
		case "relay":
			l.relay(p.val)
		case "cluster":
			l.cluster(p.val)
		case "admin":
			l.admin(p.val)
		case "metrics":
			l.metrics(p.val)
		case "auth":
			authNode = p.val // read after stores, like rules
		case "limits":
			limitsNode = p.val // read after rules, which per-event limits name
		case "stores":
			l.stores(p.val)
		case "rules":
			rulesNode = p.val // read after stores, which rules refer to
		default:
			l.unknown(p.key, "top level", topKeys)
		}
	}
	if rulesNode == nil {
		l.errAt(posOf(root), "missing field %q", "rules")
		return
	}
	l.rules(rulesNode)
	if authNode != nil {
		l.auth(authNode)
	}
	if limitsNode != nil {
		l.limits(limitsNode)
		l.checkLimitedEvents()
	}
}

// relayFields are the keys of relay:, read by relay.
var relayFields = []field{
	{"shared_room_only", "Forward `#rtcio:message` only between sockets that share a room; default `true`.",
		obj("type", "boolean", "default", true), false},
}

// relayKeys are the names in relayFields, for "unknown field" hints.
var relayKeys = keysOf(relayFields)

func (l *loader) relay(n *yaml.Node) {
	for _, p := range l.pairs(n, "relay") {
		switch p.key.Value {
		case "shared_room_only":
			l.set.Relay.SharedRoomOnly = l.boolean(p.val, "relay.shared_room_only")
		default:
			l.unknown(p.key, "relay", relayKeys)
		}
	}
}

// storeFields are the keys of one store under stores:, read by stores.
var storeFields = []field{
	{"scope", "`socket`: the key is a socket id, the entry is dropped when that socket disconnects; `room`: the key is a room, dropped when the room empties; `global`: kept until a rule deletes it.",
		obj("type", "string", "enum", scopeNames), true},
}

// storeKeys are the names in storeFields, for "unknown field" hints.
var storeKeys = keysOf(storeFields)

func (l *loader) stores(n *yaml.Node) {
	for _, p := range l.pairs(n, "stores") {
		name := p.key.Value
		if !isName(name) {
			l.errf(p.key, "store name %q must be a letter followed by letters, digits or _", name)
			continue
		}
		st := &Store{Name: name, Pos: posOf(p.key), Scope: -1}
		for _, sp := range l.pairs(p.val, fmt.Sprintf("store %q", name)) {
			switch sp.key.Value {
			case "scope":
				v, _ := l.str(sp.val, "scope")
				for i, sn := range scopeNames {
					if v == sn {
						st.Scope = Scope(i)
					}
				}
				if st.Scope < 0 && v != "" {
					l.errf(sp.val, "store %q: scope must be one of %s, got %q%s", name, strings.Join(scopeNames, ", "), v, suggest(v, scopeNames))
				}
			default:
				l.unknown(sp.key, fmt.Sprintf("store %q", name), storeKeys)
			}
		}
		if st.Scope < 0 {
			if p.val.Kind == yaml.MappingNode && !hasKey(p.val, "scope") {
				l.errf(p.key, "store %q: missing field %q (socket, room or global)", name, "scope")
			}
			continue
		}
		l.set.Stores = append(l.set.Stores, st)
		l.set.stores[name] = st
	}
}

func hasKey(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

// isName reports whether s can be written as a bare name in expressions.
func isName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		letter := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !letter && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// ruleFields are the keys of one rule, read by ruleNode.
var ruleFields = []field{
	{"name", "Optional name for messages; defaults to the event.", obj("type", "string", "examples", []any{"join-room"}), false},
	{"event", "The event handled; `connect` and `disconnecting` are lifecycle hooks.", ruleEventValue(), true},
	{"validate", "Conditions that must all hold, else the rule stops: a bare expression drops the event silently when false; `{check, reject: {emit, payload, ack}}` answers the sender only.",
		obj("anyOf", []schema{
			condValue(`type(data) == "map"`),
			obj("type", "array", "items", obj("anyOf", []schema{condValue(`type(data) == "map"`), object(checkFields)})),
		}), false},
	{"do", "The actions, run in order; every action takes an optional `if: EXPR`.", actionsValue(), true},
}

// ruleKeys are the names in ruleFields, for "unknown field" hints.
var ruleKeys = keysOf(ruleFields)

// socketIOReserved are names socket.io gives special meaning on the client;
// an emit with one of them never reaches application code.
var socketIOReserved = map[string]bool{
	"connect": true, "connect_error": true, "disconnect": true, "disconnecting": true,
	"newListener": true, "removeListener": true,
}

func (l *loader) rules(n *yaml.Node) {
	if n.Kind != yaml.SequenceNode {
		l.errf(n, "rules must be a list, got %s", kindName(n))
		return
	}
	names := map[string]bool{}
	for _, item := range n.Content {
		l.rule = ""
		r := l.ruleNode(resolve(item))
		if r == nil {
			continue
		}
		if names[r.Name] && r.Name != r.Event {
			l.errAt(r.Pos, "duplicate rule name %q", r.Name)
		}
		names[r.Name] = true
		l.set.Rules = append(l.set.Rules, r)
		l.set.byEvent[r.Event] = append(l.set.byEvent[r.Event], r)
	}
	l.rule = ""
}

func (l *loader) ruleNode(n *yaml.Node) *Rule {
	r := &Rule{Pos: posOf(n)}
	ps := l.pairs(n, "a rule")
	if ps == nil {
		return nil
	}
	var validate, do *yaml.Node
	for _, p := range ps {
		switch p.key.Value {
		case "name":
			r.Name, _ = l.str(p.val, "name")
		case "event":
			if ev, ok := l.str(p.val, "event"); ok {
				r.Event = ev
				l.checkHandled(p.val, ev)
			}
		case "validate":
			validate = p.val
		case "do":
			do = p.val
		default:
			l.rule = firstNonEmpty(r.Name, r.Event)
			l.errf(p.key, "unknown field %q%s", p.key.Value, suggest(p.key.Value, ruleKeys))
		}
	}
	if r.Name == "" {
		r.Name = r.Event
	}
	l.rule = r.Name
	if r.Event == "" {
		l.errf(n, "missing field %q", "event")
		return nil
	}
	if validate != nil {
		r.Validate = l.validate(validate)
	}
	if do == nil {
		l.errf(n, "missing field %q: a rule without actions does nothing", "do")
		return nil
	}
	r.Actions = l.actions(do, scope{}, 0)
	return r
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// checkHandled refuses events a rule can never receive or must not own.
func (l *loader) checkHandled(n *yaml.Node, ev string) {
	switch {
	case ev == "":
		l.errf(n, "event must not be empty")
	case strings.HasPrefix(ev, ProtocolPrefix):
		l.errf(n, "event %q is reserved: #rtcio: events are handled by the router itself", ev)
	case ev == HookConnect || ev == HookDisconnecting:
	case socketIOReserved[ev]:
		l.errf(n, "event %q is reserved by socket.io; the lifecycle hooks are %q and %q", ev, HookConnect, HookDisconnecting)
	}
}

// checkEmitted refuses event names a client would never see as ordinary
// events, and #rtcio: names the router owns.
func (l *loader) checkEmitted(n *yaml.Node, ev string) {
	switch {
	case ev == "":
		l.errf(n, "emit: event name must not be empty")
	case ev == EventInitOffer:
	case strings.HasPrefix(ev, ProtocolPrefix):
		l.errf(n, "emit: %q is reserved: rules may emit only #rtcio:init-offer of the #rtcio: events", ev)
	case socketIOReserved[ev]:
		l.errf(n, "emit: %q is reserved by socket.io and never reaches client handlers", ev)
	}
}

// checkFields are the keys of a `{check, reject}` item of validate, read
// by validate.
var checkFields = []field{
	{"check", "The condition; when it is false the rule stops and `reject` answers the sender.", condValue(`type(data.roomId) == "string"`), true},
	{"reject", "The answer to the sender alone when `check` is false: `emit` an event, answer the `ack` callback, or both.",
		replyValue(), false},
}

// replyValue is the schema of a reject: answer, in validate and on join.
func replyValue() schema {
	return object(replyFields).with(
		kw{"anyOf", []schema{obj("required", []string{"emit"}), obj("required", []string{"ack"})}},
		kw{"examples", []any{map[string]any{"emit": "join-error", "payload": map[string]any{"code": "bad-request"}}}})
}

// replyFields are the keys of reject:, read by reply.
var replyFields = []field{
	{"emit", "The event emitted to the sender.", emitEventValue("join-error"), false},
	{"payload", "The emitted event's payload, a template (with `emit`).", templateValue(map[string]any{"code": "room-full"}), false},
	{"ack", "The answer to the client's acknowledgement callback, a template.", templateValue(map[string]any{"ok": false}), false},
}

// checkKeys and replyKeys are the names in checkFields and replyFields,
// for "unknown field" hints.
var (
	checkKeys = keysOf(checkFields)
	replyKeys = keysOf(replyFields)
)

func (l *loader) validate(n *yaml.Node) []*Check {
	if n.Kind == yaml.ScalarNode {
		return []*Check{{Cond: l.compileBool(n, "validate", scope{})}}
	}
	if n.Kind != yaml.SequenceNode {
		l.errf(n, "validate must be a list of conditions, got %s", kindName(n))
		return nil
	}
	var out []*Check
	for _, item := range n.Content {
		item = resolve(item)
		if item.Kind == yaml.ScalarNode {
			out = append(out, &Check{Cond: l.compileBool(item, "validate", scope{})})
			continue
		}
		c := &Check{}
		for _, p := range l.pairs(item, "a validate item") {
			switch p.key.Value {
			case "check":
				c.Cond = l.compileBool(p.val, "validate", scope{})
			case "reject":
				c.Reject = l.reply(p.val, scope{})
			default:
				l.unknown(p.key, "validate", checkKeys)
			}
		}
		if c.Cond == nil && item.Kind == yaml.MappingNode && !hasKey(item, "check") {
			l.errf(item, "validate: missing field %q", "check")
		}
		out = append(out, c)
	}
	return out
}

// reply reads a reject: answer; its templates see the names of sc.
func (l *loader) reply(n *yaml.Node, sc scope) *Reply {
	r := &Reply{}
	for _, p := range l.pairs(n, "reject") {
		switch p.key.Value {
		case "emit":
			if ev, ok := l.str(p.val, "reject.emit"); ok {
				l.checkEmitted(p.val, ev)
				r.Emit = ev
			}
		case "payload":
			r.Payload = l.template(p.val, "reject.payload", sc, 0)
		case "ack":
			r.Ack = l.template(p.val, "reject.ack", sc, 0)
		default:
			l.unknown(p.key, "reject", replyKeys)
		}
	}
	if r.Emit == "" && r.Ack == nil {
		if r.Payload != nil {
			l.errf(n, "reject: payload has no effect without emit")
		} else {
			l.errf(n, "reject: needs emit, ack or both; leave reject out to drop the event silently")
		}
	}
	return r
}

// template reads a payload written as YAML: mappings and lists build
// objects and arrays, scalars are expressions.
func (l *loader) template(n *yaml.Node, what string, sc scope, depth int) *Template {
	n = resolve(n)
	if !l.spend(n) {
		return nil
	}
	if depth > maxDepth {
		l.errf(n, "%s: nested deeper than %d levels", what, maxDepth)
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		t := &Template{Kind: TemplateObject}
		for _, p := range l.pairs(n, what) {
			if v := l.template(p.val, what+"."+p.key.Value, sc, depth+1); v != nil {
				t.Keys = append(t.Keys, p.key.Value)
				t.Fields = append(t.Fields, v)
			}
		}
		return t
	case yaml.SequenceNode:
		t := &Template{Kind: TemplateArray}
		for _, item := range n.Content {
			if v := l.template(item, what+" item", sc, depth+1); v != nil {
				t.Items = append(t.Items, v)
			}
		}
		return t
	default:
		if n.Kind == yaml.ScalarNode && n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 {
			return &Template{Kind: TemplateString, Const: n.Value}
		}
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			// Written null, not computed: sent as null even as an object
			// field, where a nil expression is left out.
			return &Template{Kind: TemplateNull}
		}
		if e := l.compile(n, what, sc, false); e != nil {
			return &Template{Kind: TemplateExpr, Expr: e}
		}
		return nil
	}
}
