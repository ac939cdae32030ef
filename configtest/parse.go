package configtest

import (
	"fmt"
	"slices"
	"time"

	"github.com/rtcio/rtcio-router/rules"
	"gopkg.in/yaml.v3"
)

// file is one parsed test file.
type file struct {
	config string
	clock  *int64 // default clock of the file's tests
	// env is what expressions see as env.NAME: fixed by the file, never
	// the real environment, so tests give the same result everywhere.
	env   map[string]string
	tests []*testCase
}

type testCase struct {
	name      string
	line      int
	sockets   []socketSpec
	onConnect map[string][]event
	steps     []*step
	stores    map[string]any
	connected []string
	clock     *int64 // Unix milliseconds; nil: the real clock
}

// allSockets lists every socket the test connects, in order.
func (tc *testCase) allSockets() []string {
	var out []string
	for _, s := range tc.sockets {
		out = append(out, s.name)
	}
	for _, st := range tc.steps {
		if st.connect != "" && !slices.Contains(out, st.connect) {
			out = append(out, st.connect)
		}
	}
	return out
}

type socketSpec struct {
	name        string
	auth, query map[string]any
}

type step struct {
	line int
	// exactly one of send, connect, disconnect, wait
	send, connect, disconnect string
	wait                      time.Duration // advance the test's clock
	repeat                    int           // sends of the same event; 1 by default
	from                      string
	args                      []any
	ack                       any
	wantAck, noAck            bool
	auth, query               map[string]any
	reason                    string
	refused                   string // connect: the connect_error message expected
	expect                    map[string][]event
}

func (s *step) describe() string {
	switch {
	case s.send != "":
		return fmt.Sprintf("send %s from %s", s.send, s.from)
	case s.connect != "":
		return "connect " + s.connect
	case s.wait != 0:
		return "wait " + s.wait.String()
	default:
		return "disconnect " + s.disconnect
	}
}

// parser walks a test file with the rules loader's walker, so every
// problem names its line and column, unknown keys are errors with a
// did-you-mean hint, anchors and aliases work, an alias bomb is refused by
// the walker's visit budget, and errors come sorted, as check prints them.
type parser struct {
	*rules.Walker
	// stopped is set once the visit budget is gone: what is left unread
	// would only report problems that are not there.
	stopped bool
}

// spend is the walker's Spend, remembering when the budget is gone.
func (p *parser) spend(n *yaml.Node) bool {
	if p.stopped || !p.Walker.Spend(n) {
		p.stopped = true
		return false
	}
	return true
}

var fileKeys = []string{"config", "clock", "env", "tests"}

func parseFile(name string, src []byte) (*file, error) {
	p := &parser{Walker: rules.NewWalker(name, src)}
	doc, ok := p.Document()
	if !ok {
		return nil, p.Errors()
	}
	if len(doc.Content) == 0 {
		p.ErrAt(rules.Pos{Line: 1, Col: 1}, "the file is empty")
		return nil, p.Errors()
	}
	root := p.Resolve(doc.Content[0])
	f := &file{config: "rtcio.yaml", env: map[string]string{}}
	for _, kv := range p.pairs(root, "the file", fileKeys) {
		switch kv.Key.Value {
		case "env":
			for _, e := range p.pairs(kv.Val, "env", nil) {
				if v, ok := p.Str(e.Val, "env."+e.Key.Value); ok {
					f.env[e.Key.Value] = v
				}
			}
		case "config":
			f.config = p.str(kv.Val, "config")
		case "clock":
			f.clock = p.clock(kv.Val)
		case "tests":
			for _, item := range p.list(kv.Val, "tests") {
				f.tests = append(f.tests, p.testCase(item))
			}
		}
	}
	for _, tc := range f.tests {
		if tc.clock == nil {
			tc.clock = f.clock
		}
	}
	if len(f.tests) == 0 && len(p.Errors()) == 0 {
		p.Errf(root, "no tests")
	}
	if errs := p.Errors(); len(errs) > 0 {
		return nil, errs
	}
	return f, nil
}

// pairs is Pairs spending one visit per entry, and list the same for the
// items of a list, aliases resolved: aliases can repeat a mapping or a list
// as often as any node, so every entry read counts against the budget. Both
// stop at the entry the budget runs out on.
func (p *parser) pairs(n *yaml.Node, what string, known []string) []rules.Pair {
	ps := p.Pairs(n, what, known)
	for i, kv := range ps {
		if !p.spend(kv.Key) {
			return ps[:i]
		}
	}
	return ps
}

func (p *parser) list(n *yaml.Node, what string) []*yaml.Node {
	if n.Kind != yaml.SequenceNode {
		p.Errf(n, "%s must be a list", what)
		return nil
	}
	out := make([]*yaml.Node, 0, len(n.Content))
	for _, item := range n.Content {
		item = p.Resolve(item)
		if !p.spend(item) {
			break
		}
		out = append(out, item)
	}
	return out
}

// str reads a non-empty string.
func (p *parser) str(n *yaml.Node, what string) string {
	s, ok := p.Str(n, what)
	if ok && s == "" {
		p.Errf(n, "%s must be a non-empty string", what)
	}
	return s
}

// value decodes a payload (data, ack, auth, stores...) into plain values.
// The payload is first copied with its aliases expanded, spending one visit
// per node, so a payload that aliases blow up to millions of nodes is
// refused, not decoded, and one that fits in the budget decodes whatever
// its aliases (yaml.v3 refuses a node with many aliases below it).
func (p *parser) value(n *yaml.Node, what string) (any, bool) {
	c, ok := p.expand(n)
	if !ok {
		return nil, false
	}
	v, err := yamlValue(c)
	if err != nil {
		p.Errf(n, "%s: %v", what, err)
		return nil, false
	}
	return v, true
}

// expand copies n with every alias replaced by a copy of its anchor.
func (p *parser) expand(n *yaml.Node) (*yaml.Node, bool) {
	n = p.Resolve(n)
	if !p.spend(n) {
		return nil, false
	}
	c := *n
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, child := range n.Content {
		var ok bool
		if c.Content[i], ok = p.expand(child); !ok {
			return nil, false
		}
	}
	return &c, true
}

func (p *parser) object(n *yaml.Node, what string) map[string]any {
	v, ok := p.value(n, what)
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		p.Errf(n, "%s must be a mapping", what)
	}
	return m
}

var testKeys = []string{"name", "clock", "sockets", "steps", "stores", "connected", "on_connect"}

// clock reads a fixed time for now_ms() and unix(): Unix milliseconds.
func (p *parser) clock(n *yaml.Node) *int64 {
	var ms int64
	if n.Kind != yaml.ScalarNode || n.Decode(&ms) != nil || ms < 0 {
		p.Errf(n, "clock must be a time in Unix milliseconds, such as 1700000000000")
		return nil
	}
	return &ms
}

func (p *parser) testCase(n *yaml.Node) *testCase {
	tc := &testCase{line: n.Line}
	for _, kv := range p.pairs(n, "a test", testKeys) {
		k, v := kv.Key, kv.Val
		switch k.Value {
		case "name":
			tc.name = p.str(v, "name")
		case "clock":
			tc.clock = p.clock(v)
		case "sockets":
			for _, s := range p.pairs(v, "sockets", nil) {
				spec := socketSpec{name: s.Key.Value}
				for _, f := range p.pairs(s.Val, "socket "+spec.name, []string{"auth", "query"}) {
					if f.Key.Value == "auth" {
						spec.auth = p.object(f.Val, "auth")
					} else {
						spec.query = p.object(f.Val, "query")
					}
				}
				tc.sockets = append(tc.sockets, spec)
			}
		case "on_connect":
			tc.onConnect = p.expect(v)
		case "steps":
			for _, item := range p.list(v, "steps") {
				tc.steps = append(tc.steps, p.step(item))
			}
		case "stores":
			tc.stores = p.object(v, "stores")
		case "connected":
			val, ok := p.value(v, "connected")
			list, isList := val.([]any)
			if ok && !isList {
				p.Errf(v, "connected must be a list of socket names")
			}
			tc.connected = []string{}
			for _, s := range list {
				tc.connected = append(tc.connected, fmt.Sprint(s))
			}
		}
	}
	if tc.name == "" && !p.stopped {
		p.Errf(n, "a test needs a name")
	}
	return tc
}

var stepKeys = []string{"send", "connect", "disconnect", "wait", "repeat", "from", "data", "args", "ack", "no_ack", "auth", "query", "reason", "refused", "expect"}

func (p *parser) step(n *yaml.Node) *step {
	st := &step{line: n.Line, repeat: 1}
	var data, args *yaml.Node
	kinds := 0
	for _, kv := range p.pairs(n, "a step", stepKeys) {
		k, v := kv.Key, kv.Val
		switch k.Value {
		case "send":
			st.send, kinds = p.str(v, "send"), kinds+1
		case "connect":
			st.connect, kinds = p.str(v, "connect"), kinds+1
		case "disconnect":
			st.disconnect, kinds = p.str(v, "disconnect"), kinds+1
		case "wait":
			st.wait, _ = p.Duration(v, "wait")
			kinds++
		case "repeat":
			if r, ok := p.Int(v, "repeat", 1, maxRepeat); ok {
				st.repeat = int(r)
			}
		case "from":
			st.from = p.str(v, "from")
		case "data":
			data = v
		case "args":
			args = v
		case "ack":
			st.ack, _ = p.value(v, "ack")
			st.wantAck = true
		case "no_ack":
			st.noAck, _ = p.Bool(v, "no_ack")
		case "auth":
			st.auth = p.object(v, "auth")
		case "query":
			st.query = p.object(v, "query")
		case "reason":
			st.reason = p.str(v, "reason")
		case "refused":
			st.refused = p.str(v, "refused")
		case "expect":
			st.expect = p.expect(v)
		}
	}
	switch {
	case p.stopped:
	case kinds != 1:
		p.Errf(n, "a step needs exactly one of send, connect, disconnect, wait")
	case st.send != "" && st.from == "":
		p.Errf(n, "send needs from: the sending socket")
	case st.send == "" && (data != nil || args != nil || st.wantAck || st.noAck || st.from != ""):
		p.Errf(n, "from, data, args, ack and no_ack belong to a send step")
	case st.refused != "" && st.connect == "":
		p.Errf(n, "refused belongs to a connect step")
	case st.repeat != 1 && st.send == "":
		p.Errf(n, "repeat belongs to a send step")
	case st.repeat != 1 && (st.wantAck || st.noAck):
		p.Errf(n, "ack and no_ack check a single send: put the checked send in a step of its own")
	case st.wantAck && st.noAck:
		p.Errf(n, "ack and no_ack contradict each other")
	case data != nil && args != nil:
		p.Errf(n, "data and args contradict each other: data is the one argument, args the list")
	}
	switch {
	case data != nil:
		v, _ := p.value(data, "data")
		st.args = []any{v}
	case args != nil:
		v, ok := p.value(args, "args")
		list, isList := v.([]any)
		if ok && !isList {
			p.Errf(args, "args must be a list")
		}
		st.args = list
	}
	if st.disconnect != "" && st.reason == "" {
		st.reason = "client namespace disconnect"
	}
	return st
}

// maxRepeat bounds repeat: and times:, the copies of one send or one
// expected event.
const maxRepeat = 100000

// expect reads `socket: [event entries]`. An entry is `EVENT: PAYLOAD`
// (one argument) or a bare `EVENT` (none).
func (p *parser) expect(n *yaml.Node) map[string][]event {
	out := map[string][]event{}
	for _, kv := range p.pairs(n, "expect", nil) {
		name, list := kv.Key.Value, kv.Val
		if list.Kind != yaml.SequenceNode {
			p.Errf(list, "expect.%s must be a list of events", name)
			continue
		}
		out[name] = []event{}
		for _, item := range p.list(list, "expect."+name) {
			switch item.Kind {
			case yaml.ScalarNode:
				out[name] = append(out[name], event{name: item.Value})
			case yaml.MappingNode:
				// EVENT: PAYLOAD, optionally with times: N for N copies.
				times := 1
				var ev *event
				for i := 0; i+1 < len(item.Content); i += 2 {
					k, v := p.Resolve(item.Content[i]), p.Resolve(item.Content[i+1])
					if !p.spend(k) {
						return out
					}
					if k.Value == "times" && i > 0 {
						if t, ok := p.Int(v, "times", 1, maxRepeat); ok {
							times = int(t)
						}
						continue
					}
					if ev != nil {
						p.Errf(k, "an expected event is `EVENT: PAYLOAD` (and optionally `times: N`), one per list item")
						break
					}
					payload, _ := p.value(v, "payload")
					ev = &event{name: k.Value, args: []any{payload}}
				}
				for ev != nil && times > 0 {
					out[name] = append(out[name], *ev)
					times--
				}
			default:
				p.Errf(item, "an expected event is `EVENT: PAYLOAD` or `EVENT`")
			}
		}
	}
	return out
}
