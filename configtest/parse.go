package configtest

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
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

// parser walks a test file by hand, like the rules loader, so every
// problem names its line and column and unknown keys are errors.
type parser struct {
	file string
	errs []string
}

func (p *parser) errf(n *yaml.Node, format string, args ...any) {
	p.errs = append(p.errs, fmt.Sprintf("%s:%d:%d: %s", p.file, n.Line, n.Column, fmt.Sprintf(format, args...)))
}

func parseFile(name string, src []byte) (*file, error) {
	p := &parser{file: name}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("%s: invalid YAML: %w", name, err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: the file is empty", name)
	}
	f := &file{config: "rtcio.yaml", env: map[string]string{}}
	for _, kv := range p.pairs(doc.Content[0], "the file", []string{"config", "clock", "env", "tests"}) {
		switch kv[0].Value {
		case "env":
			for _, e := range p.pairs(kv[1], "env", nil) {
				f.env[e[0].Value] = e[1].Value
			}
		case "config":
			f.config = p.str(kv[1], "config")
		case "clock":
			f.clock = p.clock(kv[1])
		case "tests":
			if kv[1].Kind != yaml.SequenceNode {
				p.errf(kv[1], "tests must be a list")
				continue
			}
			for _, item := range kv[1].Content {
				if tc := p.testCase(item); tc != nil {
					f.tests = append(f.tests, tc)
				}
			}
		}
	}
	for _, tc := range f.tests {
		if tc.clock == nil {
			tc.clock = f.clock
		}
	}
	if len(f.tests) == 0 && len(p.errs) == 0 {
		p.errf(doc.Content[0], "no tests")
	}
	if len(p.errs) > 0 {
		return nil, errors.New(strings.Join(p.errs, "\n"))
	}
	return f, nil
}

// pairs returns the entries of a mapping, reporting unknown and duplicate
// keys.
func (p *parser) pairs(n *yaml.Node, what string, known []string) [][2]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		p.errf(n, "%s must be a mapping", what)
		return nil
	}
	var out [][2]*yaml.Node
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case known != nil && !slices.Contains(known, k.Value):
			p.errf(k, "%s: unknown field %q%s", what, k.Value, rules.Suggest(k.Value, known))
		case seen[k.Value]:
			p.errf(k, "%s: duplicate key %q", what, k.Value)
		default:
			seen[k.Value] = true
			out = append(out, [2]*yaml.Node{k, v})
		}
	}
	return out
}

func (p *parser) str(n *yaml.Node, what string) string {
	if n.Kind != yaml.ScalarNode || n.Value == "" {
		p.errf(n, "%s must be a non-empty string", what)
		return ""
	}
	return n.Value
}

func (p *parser) value(n *yaml.Node, what string) any {
	v, err := yamlValue(n)
	if err != nil {
		p.errf(n, "%s: %v", what, err)
	}
	return v
}

func (p *parser) object(n *yaml.Node, what string) map[string]any {
	m, ok := p.value(n, what).(map[string]any)
	if !ok {
		p.errf(n, "%s must be a mapping", what)
	}
	return m
}

var testKeys = []string{"name", "clock", "sockets", "steps", "stores", "connected", "on_connect"}

// clock reads a fixed time for now_ms() and unix(): Unix milliseconds.
func (p *parser) clock(n *yaml.Node) *int64 {
	var ms int64
	if err := n.Decode(&ms); err != nil || ms < 0 {
		p.errf(n, "clock must be a time in Unix milliseconds, such as 1700000000000")
		return nil
	}
	return &ms
}

func (p *parser) testCase(n *yaml.Node) *testCase {
	tc := &testCase{line: n.Line}
	for _, kv := range p.pairs(n, "a test", testKeys) {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "name":
			tc.name = p.str(v, "name")
		case "clock":
			tc.clock = p.clock(v)
		case "sockets":
			for _, s := range p.pairs(v, "sockets", nil) {
				spec := socketSpec{name: s[0].Value}
				for _, f := range p.pairs(s[1], "socket "+spec.name, []string{"auth", "query"}) {
					if f[0].Value == "auth" {
						spec.auth = p.object(f[1], "auth")
					} else {
						spec.query = p.object(f[1], "query")
					}
				}
				tc.sockets = append(tc.sockets, spec)
			}
		case "on_connect":
			tc.onConnect = p.expect(v)
		case "steps":
			if v.Kind != yaml.SequenceNode {
				p.errf(v, "steps must be a list")
				continue
			}
			for _, item := range v.Content {
				tc.steps = append(tc.steps, p.step(item))
			}
		case "stores":
			tc.stores = p.object(v, "stores")
		case "connected":
			list, ok := p.value(v, "connected").([]any)
			if !ok {
				p.errf(v, "connected must be a list of socket names")
			}
			tc.connected = []string{}
			for _, s := range list {
				tc.connected = append(tc.connected, fmt.Sprint(s))
			}
		}
	}
	if tc.name == "" {
		p.errf(n, "a test needs a name")
	}
	return tc
}

var stepKeys = []string{"send", "connect", "disconnect", "wait", "repeat", "from", "data", "args", "ack", "no_ack", "auth", "query", "reason", "refused", "expect"}

func (p *parser) step(n *yaml.Node) *step {
	st := &step{line: n.Line, repeat: 1}
	var data, args *yaml.Node
	kinds := 0
	for _, kv := range p.pairs(n, "a step", stepKeys) {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "send":
			st.send, kinds = p.str(v, "send"), kinds+1
		case "connect":
			st.connect, kinds = p.str(v, "connect"), kinds+1
		case "disconnect":
			st.disconnect, kinds = p.str(v, "disconnect"), kinds+1
		case "wait":
			d, err := time.ParseDuration(v.Value)
			if v.Kind != yaml.ScalarNode || err != nil || d <= 0 {
				p.errf(v, "wait must be a positive duration such as 1s")
			}
			st.wait, kinds = d, kinds+1
		case "repeat":
			r, err := strconv.Atoi(v.Value)
			if v.Kind != yaml.ScalarNode || err != nil || r < 1 || r > 100000 {
				p.errf(v, "repeat must be a whole number from 1 to 100000")
			}
			st.repeat = r
		case "from":
			st.from = p.str(v, "from")
		case "data":
			data = v
		case "args":
			args = v
		case "ack":
			st.ack, st.wantAck = p.value(v, "ack"), true
		case "no_ack":
			st.noAck = v.Value == "true"
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
	case kinds != 1:
		p.errf(n, "a step needs exactly one of send, connect, disconnect, wait")
	case st.send != "" && st.from == "":
		p.errf(n, "send needs from: the sending socket")
	case st.send == "" && (data != nil || args != nil || st.wantAck || st.noAck || st.from != ""):
		p.errf(n, "from, data, args, ack and no_ack belong to a send step")
	case st.refused != "" && st.connect == "":
		p.errf(n, "refused belongs to a connect step")
	case st.repeat != 1 && st.send == "":
		p.errf(n, "repeat belongs to a send step")
	case st.repeat != 1 && (st.wantAck || st.noAck):
		p.errf(n, "ack and no_ack check a single send: put the checked send in a step of its own")
	case st.wantAck && st.noAck:
		p.errf(n, "ack and no_ack contradict each other")
	case data != nil && args != nil:
		p.errf(n, "data and args contradict each other: data is the one argument, args the list")
	}
	switch {
	case data != nil:
		st.args = []any{p.value(data, "data")}
	case args != nil:
		list, ok := p.value(args, "args").([]any)
		if !ok {
			p.errf(args, "args must be a list")
		}
		st.args = list
	}
	if st.disconnect != "" && st.reason == "" {
		st.reason = "client namespace disconnect"
	}
	return st
}

// expect reads `socket: [event entries]`. An entry is `EVENT: PAYLOAD`
// (one argument) or a bare `EVENT` (none).
func (p *parser) expect(n *yaml.Node) map[string][]event {
	out := map[string][]event{}
	for _, kv := range p.pairs(n, "expect", nil) {
		name, list := kv[0].Value, kv[1]
		if list.Kind != yaml.SequenceNode {
			p.errf(list, "expect.%s must be a list of events", name)
			continue
		}
		out[name] = []event{}
		for _, item := range list.Content {
			switch item.Kind {
			case yaml.ScalarNode:
				out[name] = append(out[name], event{name: item.Value})
			case yaml.MappingNode:
				// EVENT: PAYLOAD, optionally with times: N for N copies.
				times := 1
				var ev *event
				for i := 0; i+1 < len(item.Content); i += 2 {
					k, v := item.Content[i], item.Content[i+1]
					if k.Value == "times" && i > 0 {
						if t, err := strconv.Atoi(v.Value); err == nil && t >= 1 && t <= 100000 {
							times = t
						} else {
							p.errf(v, "times must be a whole number from 1 to 100000")
						}
						continue
					}
					if ev != nil {
						p.errf(k, "an expected event is `EVENT: PAYLOAD` (and optionally `times: N`), one per list item")
						break
					}
					ev = &event{name: k.Value, args: []any{p.value(v, "payload")}}
				}
				for ev != nil && times > 0 {
					out[name] = append(out[name], *ev)
					times--
				}
			default:
				p.errf(item, "an expected event is `EVENT: PAYLOAD` or `EVENT`")
			}
		}
	}
	return out
}
