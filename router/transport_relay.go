package router

// Relay envelopes are forwarded without decoding what the router does not
// read.
//
// Why: the relay reads one member of an envelope (target) and writes one
// (source); everything else, the ICE candidate or the SDP under "data", is
// the peers' business. Decoding a 4 KB SDP into Go values and encoding it
// again was most of the router's own work per relayed message. The decoder
// checks the envelope as strictly as the generic path does (valid JSON,
// valid UTF-8, nesting depth, numbers within float64), finds the top-level
// members with one scan, and keeps the client's bytes; the encoder writes
// them back with source replaced. Anything this form does not cover (not a
// single compact object, an escaped or repeated key it needs, a target that
// is not a plain string) takes the generic path, which decides as before;
// FuzzDecodeRelay checks that both paths agree on every envelope the fast
// one accepts.

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"

	"github.com/rtcio/rtcio-router/rules"
)

// relayEnvelope is an rtc.io envelope {source, target, data, ...} as the
// client sent it.
type relayEnvelope struct {
	raw     []byte   // the object, a copy owned by the envelope
	members [][2]int // each top-level "key":value, as offsets into raw
	target  string   // the target member's string value ("" if none)
	source  string   // the stamped sender id; replaces the client's source
	skip    int      // index in members of the client's source member, or -1
}

// relayPrefix starts the text of an EVENT carrying a relay envelope.
var relayPrefix = []byte(`["` + rules.EventMessage + `",`)

// maxRelayMembers bounds the members kept per envelope; rtc.io sends three.
const maxRelayMembers = 16

// decodeRelay decodes `["#rtcio:message",{...}]` (b, the packet's JSON) into
// the event's arguments, or reports false when the generic decoder must
// handle b.
func decodeRelay(b []byte) ([]any, bool) {
	obj, ok := bytes.CutPrefix(b, relayPrefix)
	if !ok || len(obj) < 3 || obj[0] != '{' || obj[len(obj)-1] != ']' {
		return nil, false
	}
	obj = obj[:len(obj)-1]
	if !utf8.Valid(obj) || !gojson.Valid(obj) {
		return nil, false
	}
	env := &relayEnvelope{raw: append([]byte(nil), obj...), members: make([][2]int, 0, 4), skip: -1}
	if !env.scan() {
		return nil, false
	}
	return []any{rules.EventMessage, env}, true
}

// scan finds the top-level members of raw (valid JSON, an object) and applies
// the generic path's value checks: nesting depth (the argument list and the
// object count, as in withinDepth) and numbers within float64, which
// encoding/json refuses past (1e400).
func (e *relayEnvelope) scan() bool {
	b := e.raw
	depth := 0
	memberStart := -1
	keyStart, keyEnd := -1, -1
	hasTarget := false
	end := func(i int) bool { // member ends before b[i]
		if memberStart < 0 {
			return true
		}
		if len(e.members) == maxRelayMembers {
			return false
		}
		key := b[keyStart:keyEnd]
		if bytes.IndexByte(key, '\\') >= 0 {
			return false // an escaped key might spell target or source
		}
		switch string(key) {
		case `"source"`:
			if e.skip >= 0 {
				return false // repeated: the generic path keeps the last
			}
			e.skip = len(e.members)
		case `"target"`:
			if hasTarget {
				return false
			}
			hasTarget = true
			v := bytes.TrimSpace(b[keyEnd:i])
			v = bytes.TrimSpace(bytes.TrimPrefix(v, []byte(":")))
			if len(v) < 2 || v[0] != '"' || bytes.IndexByte(v, '\\') >= 0 {
				return false // not a plain string: let the generic path decide
			}
			e.target = string(v[1 : len(v)-1])
		}
		e.members = append(e.members, [2]int{memberStart, i})
		memberStart = -1
		return true
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '"':
			j := closingQuote(b, i)
			if j < 0 {
				return false // unterminated: gojson.Valid let it through
			}
			if depth == 1 && memberStart < 0 {
				memberStart, keyStart, keyEnd = i, i, j+1
			}
			i = j
		case c == '[' || c == '{':
			depth++
			if depth > maxEventDepth-1 {
				return false
			}
		case c == ']' || c == '}':
			if depth == 1 && !end(i) {
				return false
			}
			depth--
		case c == ',' && depth == 1:
			if !end(i) {
				return false
			}
		case c == '-' || (c >= '0' && c <= '9'):
			j := i + 1
			for j < len(b) && strings.IndexByte(",]} \t\r\n", b[j]) < 0 {
				j++
			}
			// Up to 15 characters without exponent always fit a float64.
			if num := b[i:j]; len(num) > 15 || bytes.ContainsAny(num, "eE") {
				if _, err := strconv.ParseFloat(string(num), 64); err != nil {
					return false
				}
			}
			i = j - 1
		}
	}
	return true
}

// closingQuote returns the index of the quote that ends the string opened at
// b[open], or -1. It jumps from quote to quote (an SDP is long strings with
// many escapes) and counts the backslashes before each.
func closingQuote(b []byte, open int) int {
	for j := open + 1; ; j++ {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return -1
		}
		j += k
		escapes := 0
		for p := j - 1; p > open && b[p] == '\\'; p-- {
			escapes++
		}
		if escapes%2 == 0 {
			return j
		}
	}
}

// MarshalJSON writes the envelope, so any encoder relays it unchanged but
// for source.
func (e *relayEnvelope) MarshalJSON() ([]byte, error) { return e.appendJSON(nil), nil }

// appendJSON appends the envelope: the stamped source first, then the
// client's other members as it wrote them.
func (e *relayEnvelope) appendJSON(b []byte) []byte {
	b = append(b, '{')
	wrote := false
	if e.source != "" {
		b = append(b, `"source":`...)
		b = appendJSONString(b, e.source)
		wrote = true
	}
	for i, m := range e.members {
		if i == e.skip && e.source != "" {
			continue
		}
		if wrote {
			b = append(b, ',')
		}
		b = append(b, bytes.TrimSpace(e.raw[m[0]:m[1]])...)
		wrote = true
	}
	return append(b, '}')
}

// materialize returns v with every relay envelope inside decoded into Go
// values, for code that inspects an envelope's contents (a rate limit's
// reject payload).
func materialize(v any) any {
	switch x := v.(type) {
	case *relayEnvelope:
		var out any
		if err := gojson.Unmarshal(x.appendJSON(nil), &out); err != nil {
			return nil // cannot happen: validated when decoded
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = materialize(e)
		}
		return out
	}
	return v
}
