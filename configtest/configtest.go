// Package configtest runs config unit tests: YAML files, written beside an
// rtcio.yaml, that declare sockets, the events they send and exactly what
// every socket must receive. They run the real rules engine in-process
// (router.Local), so an operator can check a rule change before sending
// SIGHUP, with no server and no network.
//
// File format (NAME.test.yaml):
//
//	config: rtcio.yaml            rules under test, relative to this file (default rtcio.yaml)
//	clock: 1700000000000          optional: now_ms() and unix() see this time (Unix ms); per test too
//	env: { TURN_SECRET: s3cret }  the environment expressions see as env.NAME (default: none)
//	tests:
//	  - name: two peers join
//	    sockets:                  connected in order before the first step; ids are the names
//	      alice: {}
//	      bob: { auth: {token: t}, query: {tag: x} }
//	    steps:
//	      - send: join-room       an event...
//	        from: alice           ...from this socket
//	        data: {roomId: r1}    the one argument (or args: [..] for several, or none)
//	        ack: {ok: true}       send with an ack callback; the reply must equal this
//	        no_ack: true          send with an ack callback; there must be no reply
//	        expect:               what each socket receives during the step, in order;
//	          alice:              a socket not listed must receive nothing
//	            - user-connected: {id: bob}     event with one argument
//	            - bare-event                    event with no arguments
//	            - { tick: {n: 1}, times: 3 }    the same event three times
//	      - connect: carol        connect another socket (auth, query, expect)
//	        refused: "unauthorized: token expired"   ...or expect auth: to refuse it so
//	      - disconnect: bob       disconnect (reason, expect)
//	      - wait: 1s              advance the test's clock (rate limits refill)
//	      - send: ping            repeat: N sends the same event N times in one step
//	        from: alice
//	        repeat: 10
//	    stores:                   after the last step: each listed store's entries, exactly
//	      media: {}
//	    connected: [alice]        after the last step: exactly these sockets are connected
package configtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/rtcio/rtcio-router/router"
	"gopkg.in/yaml.v3"
)

// Result is the outcome of one test.
type Result struct {
	File string
	Name string
	Line int
	// Failure is empty when the test passed; otherwise a readable account
	// of the first step that went wrong, with want and got side by side.
	Failure string
}

// Passed reports whether the test passed.
func (r Result) Passed() bool { return r.Failure == "" }

// Find expands paths into test files: a file is taken as is; a directory
// is searched recursively for *.test.yaml.
func Find(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("tests: %w", err)
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			if !d.IsDir() && strings.HasSuffix(path, ".test.yaml") {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("tests: %w", err)
		}
	}
	sort.Strings(files)
	return files, nil
}

// RunFile runs every test in one file. The error is for a file that cannot
// be read or is malformed (with positions); failing tests are Results.
func RunFile(path string) ([]Result, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read tests: %w", err)
	}
	f, err := parseFile(path, src)
	if err != nil {
		return nil, err
	}
	configPath := f.config
	if !filepath.IsAbs(configPath) {
		configPath = filepath.Join(filepath.Dir(path), configPath)
	}
	if _, err := router.NewLocal(router.Options{RulesFile: configPath, Environ: f.env}); err != nil {
		return nil, fmt.Errorf("%s: config %s: %w", path, configPath, err)
	}
	var results []Result
	for _, tc := range f.tests {
		res := Result{File: path, Name: tc.name, Line: tc.line}
		res.Failure = run(configPath, f.env, tc)
		results = append(results, res)
	}
	return results, nil
}

// run executes one test on a fresh in-process router.
func run(configPath string, env map[string]string, tc *testCase) string {
	l, err := router.NewLocal(router.Options{RulesFile: configPath, Environ: env})
	if err != nil {
		return err.Error()
	}
	if tc.clock != nil {
		l.SetClock(time.UnixMilli(*tc.clock))
	}
	for _, s := range tc.sockets {
		if err := l.Connect(s.name, s.auth, s.query); err != nil {
			return err.Error()
		}
	}
	if msg := compare(tc.onConnect, l.Deliveries()); msg != "" {
		return fmt.Sprintf("while connecting the sockets:\n%s", msg)
	}
	for i, st := range tc.steps {
		var err error
		var ackVal any
		var acked bool
		switch {
		case st.send != "":
			for n := 0; n < st.repeat && err == nil; n++ {
				if n > 0 && !l.Connected(st.from) {
					break // a rule or a rate limit disconnected the sender
				}
				ackVal, acked, err = l.Send(st.from, st.send, st.args, st.wantAck || st.noAck)
			}
		case st.wait != 0:
			l.Advance(st.wait)
		case st.connect != "":
			err = l.Connect(st.connect, st.auth, st.query)
			var refused *router.ConnectRefused
			switch {
			case errors.As(err, &refused) && refused.Message == st.refused:
				err = nil
			case err == nil && st.refused != "":
				err = fmt.Errorf("connected; want it refused with %q", st.refused)
			}
		case st.disconnect != "":
			err = l.Disconnect(st.disconnect, st.reason)
		}
		where := fmt.Sprintf("step %d (%s) at line %d", i+1, st.describe(), st.line)
		if err != nil {
			return fmt.Sprintf("%s: %v", where, err)
		}
		if msg := compare(st.expect, l.Deliveries()); msg != "" {
			return fmt.Sprintf("%s:\n%s", where, msg)
		}
		switch {
		case st.wantAck && !acked:
			return fmt.Sprintf("%s: ack: want %s, got no reply", where, show(st.ack))
		case st.wantAck && !equal(st.ack, ackVal):
			return fmt.Sprintf("%s: ack:\n    want %s\n    got  %s", where, show(st.ack), show(ackVal))
		case st.noAck && acked:
			return fmt.Sprintf("%s: ack: want no reply, got %s", where, show(ackVal))
		}
	}
	for _, name := range sortedKeys(tc.stores) {
		want := tc.stores[name]
		got := l.Store(name)
		if got == nil {
			return fmt.Sprintf("after the last step: no store %q in the config", name)
		}
		if !equal(want, got) {
			return fmt.Sprintf("after the last step: store %s:\n    want %s\n    got  %s", name, show(want), show(got))
		}
	}
	if tc.connected != nil {
		got := []string{}
		for _, s := range tc.allSockets() {
			if l.Connected(s) {
				got = append(got, s)
			}
		}
		if !equal(tc.connected, got) {
			return fmt.Sprintf("after the last step: connected sockets:\n    want %s\n    got  %s", show(tc.connected), show(got))
		}
	}
	return ""
}

// compare checks the deliveries of one step against the expectation: per
// socket, the same events in the same order; other sockets nothing.
func compare(want map[string][]event, got []router.Delivery) string {
	gotBy := map[string][]event{}
	for _, d := range got {
		gotBy[d.To] = append(gotBy[d.To], event{name: d.Event, args: d.Args})
	}
	names := map[string]bool{}
	for n := range want {
		names[n] = true
	}
	for n := range gotBy {
		names[n] = true
	}
	var b strings.Builder
	for _, n := range sortedKeys(names) {
		w, g := want[n], gotBy[n]
		if equalEvents(w, g) {
			continue
		}
		fmt.Fprintf(&b, "  %s received:\n", n)
		shown := 0
		for i := 0; i < max(len(w), len(g)); i++ {
			if shown == maxDiffLines {
				fmt.Fprintf(&b, "    … (%d events wanted, %d received; the first %d differences are shown)\n", len(w), len(g), maxDiffLines)
				break
			}
			var ws, gs string
			if i < len(w) {
				ws = w[i].String()
			}
			if i < len(g) {
				gs = g[i].String()
			}
			mark := "  "
			if ws != gs {
				mark = "✗ "
				shown++
			}
			fmt.Fprintf(&b, "    %s#%d want %s\n    %s   got  %s\n", mark, i+1, orNothing(ws), strings.Repeat(" ", len(fmt.Sprint(i+1))), orNothing(gs))
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// maxDiffLines bounds a failure's listing: a test of a thousand events
// that is off by one should not print two thousand lines.
const maxDiffLines = 20

func orNothing(s string) string {
	if s == "" {
		return "(nothing)"
	}
	return s
}

// event is one expected or received event.
type event struct {
	name string
	args []any
}

func (e event) String() string {
	if len(e.args) == 0 {
		return e.name
	}
	if len(e.args) == 1 {
		return e.name + " " + show(e.args[0])
	}
	return e.name + " " + show(e.args)
}

func equalEvents(a, b []event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].name != b[i].name || !equal(a[i].args, b[i].args) {
			return false
		}
	}
	return true
}

// equal compares values as JSON would: numbers by value, maps by content.
func equal(a, b any) bool {
	return reflect.DeepEqual(normalize(a), normalize(b))
}

func normalize(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("unencodable %T", v)
	}
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(b)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// yamlValue decodes a YAML node into plain Go values with string keys, as
// JSON would produce.
func yamlValue(n *yaml.Node) (any, error) {
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	return normalize(v), nil
}
