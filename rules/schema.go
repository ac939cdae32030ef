package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// JSONSchema returns the JSON Schema of rtcio.yaml, indented, for editors:
// with `# yaml-language-server: $schema=rtcio.schema.json` on the first line
// of a rules file, the YAML language server (VS Code's YAML extension,
// monaco-yaml, Neovim, Helix...) completes keys, shows each key's meaning on
// hover and marks unknown keys and bad values while typing, before
// `rtcio-router check` runs.
//
// The schema is built from the tables the decoder itself reads (field and
// verbSpec in decode.go and actions.go) and from scopeNames, targetNames and
// socketIOReserved, so it cannot name a key the decoder refuses or miss one
// it accepts; schema_test.go pins both directions and the committed
// rtcio.schema.json. The decoder stays the authority: expressions, store
// names and everything else only known at load time are checked by
// `rtcio-router check`, not by the schema.
//
// It is draft-07, not 2020-12, because draft-07 is the newest draft the
// YAML language server validates: support for 2019-09 and 2020-12 was
// merged and reverted there and is still an open request. Draft-07 has all
// this file needs (if/then/else, const, propertyNames, definitions).
func JSONSchema() []byte {
	root := schema{
		{"$schema", "http://json-schema.org/draft-07/schema#"},
		{"title", "rtcio.yaml"},
		{"description", "The rules of rtcio-router, a socket.io signaling server: settings, stores, and one rule per handled event. A TEMPLATE is YAML that builds a value: a mapping builds an object, a sequence an array, a quoted scalar is a literal string and any other scalar is an expression. `rtcio-router check` validates a file fully, expressions included."},
	}
	root = append(root, object(topFields)...)
	root = append(root, kw{"definitions", schema{{"action", actionSchema()}}})
	var buf bytes.Buffer
	writeJSON(&buf, root, "")
	buf.WriteByte('\n')
	return buf.Bytes()
}

// schema is one JSON Schema object (or the properties map of one) with its
// keywords in a fixed order: a Go map would be sorted by encoding/json,
// while this keeps each property's description first and the properties in
// the order of the decoder's tables, which is also the order of the
// README's reference, so the committed file reads top-down and diffs stay
// small.
type schema []kw

// kw is one keyword of a schema and its value: a string, bool, number,
// []string, []any, schema, []schema or nil.
type kw struct {
	key string
	val any
}

// obj builds a schema from alternating keywords and values; it keeps the
// tables in decode.go and actions.go short. A nil value or an empty
// []any (no examples given) leaves its keyword out.
func obj(kvs ...any) schema {
	s := make(schema, 0, len(kvs)/2)
	for i := 0; i+1 < len(kvs); i += 2 {
		if v, ok := kvs[i+1].([]any); kvs[i+1] == nil || ok && len(v) == 0 {
			continue
		}
		s = append(s, kw{kvs[i].(string), kvs[i+1]})
	}
	return s
}

// with returns s followed by more keywords, never sharing s's array, so a
// value schema used by several fields is never changed through another.
func (s schema) with(more ...kw) schema {
	return append(slices.Clip(s), more...)
}

// get returns the value of keyword k, or nil.
func (s schema) get(k string) any {
	for _, e := range s {
		if e.key == k {
			return e.val
		}
	}
	return nil
}

// The value schemas below describe how the decoder reads a scalar or a
// mapping; each names the decoder function it mirrors.

// namePattern is isName as a regular expression that both Go's regexp and
// ECMAScript (editors) read the same way.
const namePattern = "^[A-Za-z_][A-Za-z0-9_]*$"

// durationPattern accepts what time.ParseDuration does, less the sign and
// the bare "0" that duration refuses as not positive.
const durationPattern = `^(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$`

// sizePattern is parseSize written as a string: digits with an optional
// unit (KiB, MiB, KB, MB).
const sizePattern = `^[0-9]+ *(KiB|MiB|KB|MB)?$`

// exprValue is a scalar read by compile: an expression giving any value.
// YAML numbers and booleans are expressions too (`ack: 1`).
func exprValue(examples ...any) schema {
	return obj("type", []string{"string", "number", "boolean"}, "examples", examples)
}

// condValue is a scalar read by compileBool: an expression giving a bool.
func condValue(examples ...any) schema {
	return obj("type", []string{"string", "boolean"}, "examples", examples)
}

// templateValue is any YAML value, read by template: mappings build
// objects, sequences arrays, quoted scalars are literal strings and other
// scalars expressions.
func templateValue(examples ...any) schema {
	return obj("type", []string{"string", "number", "boolean", "null", "object", "array"}, "examples", examples)
}

// nameValue is a name that isName accepts: store names and the names bound
// by as and let.
func nameValue(examples ...any) schema {
	return obj("type", "string", "pattern", namePattern, "examples", examples)
}

// bindingsValue is the mapping of set_data and let, read by bindings:
// NAME: TEMPLATE.
func bindingsValue(example map[string]any) schema {
	return obj("type", "object",
		"propertyNames", obj("pattern", namePattern),
		"additionalProperties", templateValue(),
		"examples", []any{example})
}

// sizeValue is a byte count read by integer and parseSize: a whole number
// of at least min, or digits with a unit.
func sizeValue(min int64, def any, examples ...any) schema {
	return obj("anyOf", []schema{
		obj("type", "integer", "minimum", min, "maximum", int64(1)<<40),
		obj("type", "string", "pattern", sizePattern),
	}, "default", def, "examples", examples)
}

// countValue is a count read by integer: a whole number of at least min.
func countValue(min, def int) schema {
	return obj("type", "integer", "minimum", min, "default", def)
}

// durationValue is a duration read by duration.
func durationValue(def string) schema {
	return obj("type", "string", "pattern", durationPattern, "default", def, "examples", []any{def, "1m", "500ms"})
}

// ruleEventValue is what checkHandled accepts as a rule's event: not empty,
// not #rtcio:, not a name socket.io reserves except the two hooks.
func ruleEventValue() schema {
	var reserved []string
	for ev := range socketIOReserved {
		if ev != HookConnect && ev != HookDisconnecting {
			reserved = append(reserved, ev)
		}
	}
	sort.Strings(reserved)
	return obj("type", "string", "minLength", 1,
		"not", obj("anyOf", []schema{obj("pattern", "^#rtcio:"), obj("enum", reserved)}),
		"examples", []any{"join-room", HookConnect, HookDisconnecting})
}

// emitEventValue is what checkEmitted accepts as an emitted event: not
// empty, not a name socket.io reserves, and of the #rtcio: events only
// #rtcio:init-offer.
func emitEventValue(examples ...any) schema {
	reserved := make([]string, 0, len(socketIOReserved))
	for ev := range socketIOReserved {
		reserved = append(reserved, ev)
	}
	sort.Strings(reserved)
	return obj("type", "string", "minLength", 1,
		"not", obj("anyOf", []schema{
			obj("pattern", "^"+ProtocolPrefix, "not", obj("const", EventInitOffer)),
			obj("enum", reserved),
		}),
		"examples", examples)
}

// actionsValue is a list of actions, read by actions: the rule's do and
// for_each's do. Items refer to the one action definition, which is how
// for_each nests.
func actionsValue() schema {
	return obj("type", "array", "items", obj("$ref", "#/definitions/action"))
}

// property is the schema of one key: its description first (what editors
// show on hover), then its value's keywords.
func property(f field) schema {
	return append(schema{{"description", f.doc}}, f.value...)
}

// object is the schema of a mapping whose keys are fields: every other key
// is refused, as the decoder's `unknown field` does.
func object(fields []field) schema {
	props := make(schema, 0, len(fields))
	var required []string
	for _, f := range fields {
		props = append(props, kw{f.name, property(f)})
		if f.required {
			required = append(required, f.name)
		}
	}
	s := obj("type", "object", "properties", props)
	if len(required) > 0 {
		s = s.with(kw{"required", required})
	}
	return s.with(kw{"additionalProperties", false})
}

// actionSchema is one action: exactly one verb with the modifiers that verb
// takes (verbSpec). Each verb is one alternative of a oneOf that requires
// the verb and refuses every other key, so an action with two verbs, no
// verb, or a modifier of another verb matches none.
func actionSchema() schema {
	alts := make([]schema, 0, len(verbTable))
	for _, v := range verbTable {
		verb := v.field
		verb.required = true
		alt := object(append([]field{verb}, v.mods...))
		if extra := verbConstraints[v.name]; extra != nil {
			alt = alt.with(extra...)
		}
		alts = append(alts, alt)
	}
	return obj("description", "One action: exactly one verb ("+strings.Join(verbs, ", ")+") with the modifiers that verb takes; every action takes an optional `if`.",
		"type", "object",
		"oneOf", alts)
}

// verbConstraints are rules between an action's keys that the decoder
// checks beyond which keys exist (now only emit's), so editors flag them
// too.
var verbConstraints = map[string]schema{
	// emit: room goes with to: room or room_all, socket with to: socket;
	// each is required there and has no effect elsewhere (the decoder's
	// "needs room" and "has no effect with to:" messages).
	"emit": {{"allOf", []schema{
		emitNeeds("room", TargetRoom.String(), TargetRoomAll.String()),
		emitNeeds("socket", TargetSocket.String()),
	}}},
}

// emitNeeds says key is required when `to` is one of targets, and refused
// otherwise (including when `to` is left out: the default is sender).
func emitNeeds(key string, targets ...string) schema {
	return obj(
		"if", obj("required", []string{"to"}, "properties", obj("to", obj("enum", targets))),
		"then", obj("required", []string{key}),
		"else", obj("not", obj("required", []string{key})),
	)
}

// writeJSON writes v as indented JSON, keeping a schema's keyword order and
// leaving <, > and & unescaped (expressions in examples use && and >).
func writeJSON(buf *bytes.Buffer, v any, indent string) {
	inner := indent + "  "
	switch v := v.(type) {
	case schema:
		if len(v) == 0 {
			buf.WriteString("{}")
			return
		}
		buf.WriteString("{\n")
		for i, e := range v {
			buf.WriteString(inner)
			writeString(buf, e.key)
			buf.WriteString(": ")
			writeJSON(buf, e.val, inner)
			if i < len(v)-1 {
				buf.WriteByte(',')
			}
			buf.WriteByte('\n')
		}
		buf.WriteString(indent + "}")
	case []schema:
		items := make([]any, len(v))
		for i, s := range v {
			items[i] = s
		}
		writeJSON(buf, items, indent)
	case []string:
		items := make([]any, len(v))
		for i, s := range v {
			items[i] = s
		}
		writeJSON(buf, items, indent)
	case []any:
		if len(v) == 0 {
			buf.WriteString("[]")
			return
		}
		buf.WriteString("[\n")
		for i, item := range v {
			buf.WriteString(inner)
			writeJSON(buf, item, inner)
			if i < len(v)-1 {
				buf.WriteByte(',')
			}
			buf.WriteByte('\n')
		}
		buf.WriteString(indent + "]")
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		s := make(schema, 0, len(keys))
		for _, k := range keys {
			s = append(s, kw{k, v[k]})
		}
		writeJSON(buf, s, indent)
	case string:
		writeString(buf, v)
	case nil:
		buf.WriteString("null")
	case bool, int, int64, float64:
		fmt.Fprint(buf, v)
	default:
		panic(fmt.Sprintf("rules: writeJSON: unexpected %T", v))
	}
}

// writeString writes s as a JSON string, without HTML escaping.
func writeString(buf *bytes.Buffer, s string) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		panic(err) // a string always encodes
	}
	buf.WriteString(strings.TrimSuffix(b.String(), "\n"))
}
