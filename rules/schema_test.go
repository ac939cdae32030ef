package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/golden"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// schemaFile is the committed output of JSONSchema, the file editors load.
const schemaFile = "../rtcio.schema.json"

// TestSchemaFile pins the committed rtcio.schema.json to JSONSchema(), so
// a change to the decoder's tables cannot ship without the file editors
// read.
func TestSchemaFile(t *testing.T) {
	got := JSONSchema()
	if golden.Update() {
		if err := os.WriteFile(schemaFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatalf("%v: run `go test ./rules -run TestSchemaFile -update` to write it", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("rtcio.schema.json is out of date with the decoder: run `go test ./rules -run TestSchemaFile -update` and commit it")
	}
}

// schemaNode is a JSON Schema object as encoding/json decodes it.
type schemaNode = map[string]any

// parsedSchema is JSONSchema() decoded, for tests that walk it.
func parsedSchema(t *testing.T) schemaNode {
	t.Helper()
	var root schemaNode
	if err := json.Unmarshal(JSONSchema(), &root); err != nil {
		t.Fatalf("JSONSchema is not JSON: %v", err)
	}
	return root
}

// at follows a path of keys and list indexes through the schema.
func at(t *testing.T, n any, path ...any) schemaNode {
	t.Helper()
	for _, p := range path {
		switch p := p.(type) {
		case string:
			m, _ := n.(schemaNode)
			n = m[p]
		case int:
			l, _ := n.([]any)
			if p >= len(l) {
				t.Fatalf("schema path %v: no item %d", path, p)
			}
			n = l[p]
		}
		if n == nil {
			t.Fatalf("schema path %v: no %v", path, p)
		}
	}
	m, ok := n.(schemaNode)
	if !ok {
		t.Fatalf("schema path %v: %T, not an object", path, n)
	}
	return m
}

// propertyNames lists an object schema's properties, sorted: they are
// compared as sets, and TestSchemaKeyOrder checks their order.
func propertyNames(t *testing.T, n schemaNode) []string {
	t.Helper()
	props, _ := n["properties"].(schemaNode)
	names := make([]string, 0, len(props))
	for k := range props {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// sorted returns a sorted copy, to compare key lists as sets.
func sorted(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

// schemaLevels are the mappings of the file: the decoder's list of known
// keys for each and where the schema describes it.
func schemaLevels(t *testing.T, root schemaNode) []struct {
	name string
	keys []string
	node schemaNode
} {
	rule := at(t, root, "properties", "rules", "items")
	check := at(t, rule, "properties", "validate", "anyOf", 1, "items", "anyOf", 1)
	return []struct {
		name string
		keys []string
		node schemaNode
	}{
		{"top level", topKeys, root},
		{"server", serverKeys, at(t, root, "properties", "server")},
		{"relay", relayKeys, at(t, root, "properties", "relay")},
		{"store", storeKeys, at(t, root, "properties", "stores", "additionalProperties")},
		{"rule", ruleKeys, rule},
		{"validate item", checkKeys, check},
		{"reject", replyKeys, at(t, check, "properties", "reject")},
	}
}

// TestSchemaMatchesDecoderKeys: at every level, the schema's properties are
// exactly the keys the decoder accepts, every level refuses other keys, and
// each action alternative is one verb plus exactly that verb's modifiers.
func TestSchemaMatchesDecoderKeys(t *testing.T) {
	root := parsedSchema(t)
	for _, lv := range schemaLevels(t, root) {
		if got, want := propertyNames(t, lv.node), sorted(lv.keys); !slices.Equal(got, want) {
			t.Errorf("%s: schema properties %v, decoder keys %v", lv.name, got, want)
		}
		if lv.node["additionalProperties"] != false {
			t.Errorf("%s: schema allows unknown keys; the decoder refuses them", lv.name)
		}
	}
	alts, _ := at(t, root, "definitions", "action")["oneOf"].([]any)
	var seen []string
	for i := range alts {
		alt := at(t, alts, i)
		req, _ := alt["required"].([]any)
		if len(req) == 0 {
			t.Fatalf("action alternative %d requires no verb", i)
		}
		verb := req[0].(string)
		seen = append(seen, verb)
		want := sorted(append([]string{verb}, modifiers[verb]...))
		if got := propertyNames(t, alt); !slices.Equal(got, want) {
			t.Errorf("action %s: schema properties %v, decoder accepts %v", verb, got, want)
		}
		if alt["additionalProperties"] != false {
			t.Errorf("action %s: schema allows unknown keys", verb)
		}
	}
	if !slices.Equal(seen, verbs) {
		t.Errorf("schema action verbs %v, decoder verbs %v", seen, verbs)
	}
}

// TestSchemaEnums: the closed lists of values are the decoder's own.
func TestSchemaEnums(t *testing.T) {
	root := parsedSchema(t)
	enum := func(n schemaNode) []string {
		var out []string
		for _, v := range n["enum"].([]any) {
			out = append(out, v.(string))
		}
		return out
	}
	if got := enum(at(t, root, "properties", "stores", "additionalProperties", "properties", "scope")); !slices.Equal(got, scopeNames) {
		t.Errorf("scope enum %v, decoder %v", got, scopeNames)
	}
	alts := at(t, root, "definitions", "action")["oneOf"].([]any)
	emit := at(t, alts, slices.Index(verbs, "emit"))
	if got := enum(at(t, emit, "properties", "to")); !slices.Equal(got, targetNames) {
		t.Errorf("emit to enum %v, decoder %v", got, targetNames)
	}
}

// TestDecoderSwitchesMatchTables reads the decoder's source: every `case
// "KEY":` of a switch on a mapping key must be in the table of its level
// and every table key must have its case, so a key added to one and not
// the other fails here rather than in a user's editor. The same holds for
// the verbs' switch and the modifiers the action reader looks up.
func TestDecoderSwitchesMatchTables(t *testing.T) {
	levels := map[string][]string{
		"document": topKeys,
		// server: has no switch: serverSettings is both its table and its
		// reader (TestServerSettingsComplete checks every entry).
		"relay":    relayKeys,
		"stores":   storeKeys,
		"ruleNode": ruleKeys,
		"validate": checkKeys,
		"reply":    replyKeys,
		"action":   verbs, // switch v: the verbs
	}
	found := map[string][]string{}
	var modsRead []string
	fset := token.NewFileSet()
	for _, file := range []string{"decode.go", "actions.go"} {
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.SwitchStmt:
					if !isKeySwitch(n.Tag, fn.Name.Name) {
						return true
					}
					if _, ok := levels[fn.Name.Name]; !ok {
						t.Errorf("%s: %s switches on mapping keys but is not in this test's levels: add it with its table", fset.Position(n.Pos()), fn.Name.Name)
					}
					for _, s := range n.Body.List {
						for _, e := range s.(*ast.CaseClause).List {
							if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
								v, _ := strconv.Unquote(lit.Value)
								found[fn.Name.Name] = append(found[fn.Name.Name], v)
							}
						}
					}
				case *ast.IndexExpr:
					if id, ok := n.X.(*ast.Ident); ok && id.Name == "fields" {
						if lit, ok := n.Index.(*ast.BasicLit); ok && lit.Kind == token.STRING {
							v, _ := strconv.Unquote(lit.Value)
							if !slices.Contains(modsRead, v) {
								modsRead = append(modsRead, v)
							}
						}
					}
				}
				return true
			})
		}
	}
	for fn, keys := range levels {
		if got, want := sorted(found[fn]), sorted(keys); !slices.Equal(got, want) {
			t.Errorf("%s: the switch accepts %v, the table lists %v", fn, got, want)
		}
	}
	var mods []string
	for _, k := range allActionKeys {
		if !slices.Contains(verbs, k) {
			mods = append(mods, k)
		}
	}
	if got, want := sorted(modsRead), sorted(mods); !slices.Equal(got, want) {
		t.Errorf("the action reader looks up modifiers %v, verbTable lists %v", got, want)
	}
}

// isKeySwitch reports whether a switch tag is a mapping key (p.key.Value)
// or, in action, the verb.
func isKeySwitch(tag ast.Expr, fn string) bool {
	if id, ok := tag.(*ast.Ident); ok {
		return fn == "action" && id.Name == "v"
	}
	sel, ok := tag.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "Value" {
		return false
	}
	inner, ok := sel.X.(*ast.SelectorExpr)
	return ok && inner.Sel.Name == "key"
}

// TestSchemaKeyOrder: properties appear in the tables' order, the order of
// the README's reference, so hover and completion lists read the same way.
func TestSchemaKeyOrder(t *testing.T) {
	src := string(JSONSchema())
	check := func(what string, keys []string) {
		last := -1
		for _, k := range keys {
			i := strings.Index(src[max(last, 0):], `"`+k+`": {`)
			if i < 0 {
				t.Errorf("%s: %q not found after the previous key", what, k)
				return
			}
			last = max(last, 0) + i
		}
	}
	check("top", topKeys)
	check("server", serverKeys)
	check("rule", ruleKeys)
}

// TestSchemaDescriptions: every property has a description, which is what
// editors show on hover.
func TestSchemaDescriptions(t *testing.T) {
	var walk func(path string, n any)
	walk = func(path string, n any) {
		switch n := n.(type) {
		case schemaNode:
			if props, ok := n["properties"].(schemaNode); ok {
				for k, p := range props {
					if d, _ := p.(schemaNode)["description"].(string); strings.TrimSpace(d) == "" {
						t.Errorf("%s.%s has no description", path, k)
					}
				}
			}
			for k, v := range n {
				if k == "if" || k == "not" {
					continue // conditions, not keys anyone writes or hovers
				}
				walk(path+"/"+k, v)
			}
		case []any:
			for i, v := range n {
				walk(fmt.Sprintf("%s/%d", path, i), v)
			}
		}
	}
	walk("#", parsedSchema(t))
}

// compiledSchema compiles JSONSchema() with a real draft-07 validator, which
// also checks the schema against the draft-07 meta-schema.
func compiledSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(JSONSchema()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("rtcio.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("rtcio.schema.json")
	if err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}
	return sch
}

// yamlInstance reads YAML as the YAML language server does, into the JSON
// value the schema validates.
func yamlInstance(t *testing.T, src []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jsonValue(v))
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// jsonValue turns yaml.v3's map[any]any (mappings with non-string keys)
// into maps encoding/json can write.
func jsonValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = jsonValue(x)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[fmt.Sprint(k)] = jsonValue(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = jsonValue(x)
		}
		return out
	}
	return v
}

// TestSchemaAcceptsShippedFiles: the built-in rules, every example and the
// router's feature file are valid under the schema, and the files users
// open name it on their first line.
func TestSchemaAcceptsShippedFiles(t *testing.T) {
	sch := compiledSchema(t)
	examples, _ := filepath.Glob("../examples/*/rtcio.yaml")
	if len(examples) == 0 {
		t.Fatal("no examples found")
	}
	files := append([]string{"../rtcio.yaml", "../router/testdata/features.yaml"}, examples...)
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(yamlInstance(t, src)); err != nil {
			t.Errorf("%s does not match the schema:\n%v", f, err)
		}
		if f == "../router/testdata/features.yaml" {
			continue
		}
		rel, _ := filepath.Rel(filepath.Dir(f), schemaFile)
		want := "# yaml-language-server: $schema=" + filepath.ToSlash(rel)
		if !strings.HasPrefix(rel, ".") {
			want = "# yaml-language-server: $schema=./" + filepath.ToSlash(rel)
		}
		if first, _, _ := strings.Cut(string(src), "\n"); first != want {
			t.Errorf("%s: first line %q, want %q", f, first, want)
		}
	}
}

// TestSchemaRejects: mistakes the decoder refuses are refused by the schema
// too, so editors flag them while typing.
func TestSchemaRejects(t *testing.T) {
	sch := compiledSchema(t)
	const ok = "stores:\n  media: {scope: socket}\nrules:\n  - event: e\n    do:\n"
	tests := []struct{ name, src string }{
		{"unknown top key", "rule: []\n"},
		{"missing rules", "version: 1\n"},
		{"bad version", "version: 2\nrules: []\n"},
		{"unknown server key", "server: {cors_origin: ['*']}\nrules: []\n"},
		{"bad duration", "server: {ping_interval: fast}\nrules: []\n"},
		{"small payload", "server: {max_payload: 10}\nrules: []\n"},
		{"bad size", "server: {max_payload: 64kb}\nrules: []\n"},
		{"listen without port", "server: {listen: localhost}\nrules: []\n"},
		{"relay not bool", "relay: {shared_room_only: yes please}\nrules: []\n"},
		{"bad scope", "stores:\n  media: {scope: sockett}\nrules: []\n"},
		{"store without scope", "stores:\n  media: {}\nrules: []\n"},
		{"bad store name", "stores:\n  2media: {scope: room}\nrules: []\n"},
		{"unknown rule key", "rules:\n  - event: e\n    validat: []\n    do: []\n"},
		{"rule without event", "rules:\n  - do: []\n"},
		{"reserved event", "rules:\n  - event: \"#rtcio:message\"\n    do: []\n"},
		{"socket.io event", "rules:\n  - event: disconnect\n    do: []\n"},
		{"reject without answer", "rules:\n  - event: e\n    validate:\n      - check: data != nil\n        reject: {payload: 1}\n    do: []\n"},
		{"two verbs", ok + "      - join: data.room\n        emit: joined\n"},
		{"no verb", ok + "      - if: data != nil\n"},
		{"unknown action key", ok + "      - ack: 1\n        iff: true\n"},
		{"modifier of another verb", ok + "      - emit: x\n        as: y\n"},
		{"emit to rooms", ok + "      - emit: x\n        to: rooms\n        room: data.room\n"},
		{"emit to room without room", ok + "      - emit: x\n        to: room\n"},
		{"emit room to sender", ok + "      - emit: x\n        room: data.room\n"},
		{"emit to socket without socket", ok + "      - emit: x\n        to: socket\n"},
		{"emit reserved", ok + "      - emit: \"#rtcio:peer-left\"\n"},
		{"for_each without as", ok + "      - for_each: args\n        do: []\n"},
		{"set without value", ok + "      - set: media\n"},
		{"disconnect false", ok + "      - disconnect: false\n"},
		{"nested unknown", ok + "      - for_each: args\n        as: a\n        do:\n          - ack: 1\n            to: sender\n"},
		{"bad let name", ok + "      - let: {2x: 1}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := sch.Validate(yamlInstance(t, []byte(tt.src))); err == nil {
				t.Errorf("the schema accepts:\n%s", tt.src)
			}
			if _, err := Parse("t.yaml", []byte(tt.src), Options{Environ: map[string]string{}}); err == nil {
				t.Errorf("the decoder accepts (the case is wrong):\n%s", tt.src)
			}
		})
	}
}

// TestSchemaPropertiesParse is the other direction of the drift test: for
// every property the schema names, at every level, a minimal document using
// it (its example, default or first allowed value) is loaded by the real
// decoder. An "unknown field" error means the schema offers a key the
// decoder refuses; any other error means the schema's example or type is
// wrong. Each document must also pass the schema itself. And for every key
// the schema requires, the minimal document without it must be refused by
// the decoder as well as by the schema.
func TestSchemaPropertiesParse(t *testing.T) {
	root := parsedSchema(t)
	sch := compiledSchema(t)
	w := &schemaWalker{t: t, root: root, refs: map[string]bool{}, tested: map[string]bool{}}
	w.object("", root, func(v any) any {
		m := v.(map[string]any)
		if _, ok := m["stores"]; !ok {
			// set and delete name the store of their examples.
			m["stores"] = map[string]any{"media": map[string]any{"scope": "socket"}}
		}
		if rs, ok := m["rules"].([]any); ok && len(rs) == 0 {
			// limits.events names an event some rule must handle.
			m["rules"] = []any{map[string]any{"event": "media", "do": []any{map[string]any{"ack": "1"}}}}
		}
		return m
	}, func(path string, doc any, valid bool) {
		src, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Parse("t.yaml", src, Options{Environ: map[string]string{"JWT_SECRET": "s3cret"}})
		if !valid {
			// A key the schema requires, left out: the decoder must
			// report it too, and so must the schema.
			if err == nil {
				t.Errorf("%s: the schema requires it, the decoder does not:\n%s", path, src)
			}
			if sch.Validate(yamlInstance(t, src)) == nil {
				t.Errorf("%s: the schema accepts a document without it:\n%s", path, src)
			}
			return
		}
		if err != nil && strings.Contains(path, "public_key_file") && strings.Contains(err.Error(), "no such file") {
			err = nil // the schema cannot know which files exist
		}
		if err != nil {
			kind := "the decoder refuses it"
			if strings.Contains(err.Error(), "unknown field") {
				kind = "schema drift: the decoder does not know this key"
			}
			t.Errorf("%s: %s:\n%s\n%v", path, kind, src, err)
		}
		if err := sch.Validate(yamlInstance(t, src)); err != nil {
			t.Errorf("%s: the schema refuses its own minimal document:\n%s\n%v", path, src, err)
		}
	})
	// Every verb and every level was reached.
	for _, want := range []string{"server.listen", "relay.shared_room_only", "stores.*.scope", "rules[].validate[].reject.ack", "rules[].do[]<for_each>.where", "rules[].do[]<emit>.socket"} {
		if !w.tested[want] {
			t.Errorf("the walk never tested %s (tested: %v)", want, w.tested)
		}
	}
}

// schemaWalker visits every property of the schema, building for each a
// whole document that uses it.
type schemaWalker struct {
	t      *testing.T
	root   schemaNode
	refs   map[string]bool // $refs already entered, so for_each.do ends
	tested map[string]bool
}

// checkFunc loads one whole document built for path, which must be valid,
// or, with valid false, refused.
type checkFunc func(path string, doc any, valid bool)

// companions are keys a property needs beside it to make sense, as the
// decoder requires: emit's room and socket go with a matching to.
var companions = map[string]map[string]any{
	"<emit>.room":   {"to": "room"},
	"<emit>.socket": {"to": "socket"},
}

// rivals are keys that exclude a key of the minimal object: a JWT is
// checked with a secret or with a public key, never both.
var rivals = map[string]string{
	"auth.jwt.public_key_file": "secret_env",
}

// object tests each property of an object schema n at path, wrap turning
// the object into a whole document, then descends into the property.
func (w *schemaWalker) object(path string, n schemaNode, wrap func(any) any, check checkFunc) {
	req, _ := n["required"].([]any)
	for _, r := range req {
		o := w.minimal(path, n).(map[string]any)
		delete(o, r.(string))
		check(strings.TrimPrefix(path+"."+r.(string), ".")+" (left out)", wrap(o), false)
	}
	props, _ := n["properties"].(schemaNode)
	names := make([]string, 0, len(props))
	for k := range props {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		p := props[k].(schemaNode)
		kp := strings.TrimPrefix(path+"."+k, ".")
		with := func(v any) any {
			o := w.minimal(path, n).(map[string]any)
			o[k] = v
			for suffix, extra := range companions {
				if strings.HasSuffix(kp, suffix) {
					for ek, ev := range extra {
						o[ek] = ev
					}
				}
			}
			delete(o, rivals[kp])
			return wrap(o)
		}
		w.tested[kp] = true
		check(kp, with(w.minimal(kp, p)), true)
		w.descend(kp, p, with, check)
	}
}

// descend enters the objects a property's value may hold.
func (w *schemaWalker) descend(path string, n schemaNode, wrap func(any) any, check checkFunc) {
	if ref, ok := n["$ref"].(string); ok {
		if w.refs[ref] {
			return
		}
		w.refs[ref] = true
		w.descend(path, w.resolve(ref), wrap, check)
		return
	}
	if _, ok := n["properties"]; ok {
		w.object(path, n, wrap, check)
	}
	if items, ok := n["items"].(schemaNode); ok {
		w.descend(path+"[]", items, func(v any) any { return wrap([]any{v}) }, check)
	}
	if ap, ok := n["additionalProperties"].(schemaNode); ok {
		w.descend(path+".*", ap, func(v any) any { return wrap(map[string]any{"media": v}) }, check)
	}
	for _, k := range []string{"anyOf", "oneOf"} {
		alts, _ := n[k].([]any)
		for _, a := range alts {
			alt := a.(schemaNode)
			p := path
			if req, _ := alt["required"].([]any); len(req) > 0 && k == "oneOf" {
				p = fmt.Sprintf("%s<%s>", path, req[0])
			}
			w.descend(p, alt, wrap, check)
		}
	}
}

func (w *schemaWalker) resolve(ref string) schemaNode {
	name, ok := strings.CutPrefix(ref, "#/definitions/")
	if !ok {
		w.t.Fatalf("unexpected $ref %q", ref)
	}
	return at(w.t, w.root, "definitions", name)
}

// minimal is the smallest value of schema n: its first example, its
// default, its constant or first allowed value, or an object of its
// required properties; a list is empty.
func (w *schemaWalker) minimal(path string, n schemaNode) any {
	if ref, ok := n["$ref"].(string); ok {
		return w.minimal(path, w.resolve(ref))
	}
	if ex, ok := n["examples"].([]any); ok && len(ex) > 0 {
		return clone(ex[0])
	}
	for _, k := range []string{"default", "const"} {
		if v, ok := n[k]; ok {
			return clone(v)
		}
	}
	if e, ok := n["enum"].([]any); ok {
		return e[0]
	}
	if props, ok := n["properties"].(schemaNode); ok {
		o := map[string]any{}
		req, _ := n["required"].([]any)
		for _, r := range req {
			o[r.(string)] = w.minimal(path+"."+r.(string), props[r.(string)].(schemaNode))
		}
		return o
	}
	switch n["type"] {
	case "array":
		return []any{}
	case "object":
		return map[string]any{}
	}
	for _, k := range []string{"anyOf", "oneOf"} {
		if alts, ok := n[k].([]any); ok {
			return w.minimal(path, alts[0].(schemaNode))
		}
	}
	w.t.Fatalf("%s: no example, default or type to build a value from: give it examples", path)
	return nil
}

// clone copies a decoded JSON value, so documents never share maps.
func clone(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

// TestServerSettingsComplete: every server setting has a reader and a
// value for reload checks, every Server field is reachable from the table,
// and exactly the settings marked live may change on reload.
func TestServerSettingsComplete(t *testing.T) {
	for _, s := range serverSettings {
		if s.set == nil || s.get == nil {
			t.Errorf("server.%s: missing reader or value", s.name)
		}
	}
	if n, fields := len(serverSettings), reflect.TypeOf(Server{}).NumField(); n != fields {
		t.Errorf("%d server settings for %d Server fields", n, fields)
	}
	old := DefaultServer()
	next := old
	next.MaxRoomsPerSocket, next.MaxRoomName = 7, 9
	if err := old.FixedChanges(next); err != nil {
		t.Errorf("live settings refused: %v", err)
	}
	next.PingTimeout, next.Listen = 3*time.Second, ":4000"
	err := old.FixedChanges(next)
	want := "reload not supported for server.listen: old=\":3001\", new=\":4000\" (restart to change it)\n" +
		"reload not supported for server.ping_timeout: old=\"20s\", new=\"3s\" (restart to change it)"
	if err == nil || err.Error() != want {
		t.Errorf("FixedChanges: %v, want %s", err, want)
	}
}
