package sio

// Pass-through events: an object argument forwarded without decoding what
// the server does not read.
//
// Why: a relay reads a member or two of an object (a target) and writes
// one (the stamped sender); everything else, an SDP of several KB, is the
// peers' business. Decoding it into Go values and encoding it again was
// most of the server's own work per relayed message. The decoder checks
// the object as strictly as the generic path does (valid JSON, valid
// UTF-8, nesting depth, numbers within float64), finds its top-level
// members with one scan, and keeps the client's bytes; the encoder writes
// them back with the stamped member replaced. Anything this form does not
// cover (not a single compact object, an escaped or repeated key) takes the
// generic path, which decides as before; FuzzDecodeObjectEvent checks that
// both paths agree on every object the fast one accepts.

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"
)

// RawObject is a JSON object as a client sent it, with one member the
// server may set (Stamp).
type RawObject struct {
	raw []byte // the object, a copy owned by the RawObject
	// members are the top-level members as offsets into raw: the whole
	// "key":value, then the key without its quotes.
	members [][4]int
	stampK  string // the stamped member's key ("" for none)
	stampV  string // and its string value
	// memberBuf holds the members of an object of up to four (rtc.io's
	// envelope has three) in the RawObject's own allocation.
	memberBuf [4][4]int
}

// passThroughEvent is a Config.PassThrough event and the start of its
// frames' JSON.
type passThroughEvent struct {
	name   string
	prefix []byte // `["name",`
	// data is a decoded packet's data, the name alone: built once and
	// shared, read-only, by every packet of the event (three allocations
	// per relayed message otherwise). Its readers take data[0] and
	// data[1:], and the library's path replaces it (wireDecoder).
	data any
}

func newPassThrough(name string) passThroughEvent {
	return passThroughEvent{name: name, prefix: append(appendJSONString([]byte{'['}, name), ','), data: []any{name}}
}

// maxObjectMembers bounds the members kept per object; rtc.io's envelope
// has three.
const maxObjectMembers = 16

// decodeObjectEvent decodes the argument of `["name",{...}]` (b, the
// packet's JSON, which starts with prefix), or reports false when the
// generic decoder must handle b. The RawObject holds its own copy.
func decodeObjectEvent(b, prefix []byte) (*RawObject, bool) { return decodeObject(b, prefix, false) }

// decodeObject is decodeObjectEvent; with borrow the RawObject reads b
// itself instead of a copy, and is valid only while b is. The direct path
// borrows (see directEvent): the copy was 93 % of the bytes the router
// allocated per relayed 4 KB SDP, and what it allocates sets how often the
// collector runs, whose mark phases then held the 4 KB round trips' p99
// (bench/README.md, issue 14).
func decodeObject(b, prefix []byte, borrow bool) (*RawObject, bool) {
	obj, ok := bytes.CutPrefix(b, prefix)
	if !ok || len(obj) < 3 || obj[0] != '{' || obj[len(obj)-1] != ']' {
		return nil, false
	}
	obj = obj[:len(obj)-1]
	if !utf8.Valid(obj) || !gojson.Valid(obj) {
		return nil, false
	}
	if !borrow {
		obj = append([]byte(nil), obj...)
	}
	o := &RawObject{raw: obj}
	o.members = o.memberBuf[:0]
	if !o.scan() {
		return nil, false
	}
	return o, true
}

// member returns the raw value of the member key, or nil.
func (o *RawObject) member(key string) []byte {
	for _, m := range o.members {
		if string(o.raw[m[2]:m[3]]) == key {
			v := o.raw[m[3]+1 : m[1]] // after the key's closing quote
			v = bytes.TrimSpace(v)
			return bytes.TrimSpace(bytes.TrimPrefix(v, []byte(":")))
		}
	}
	return nil
}

// String returns the member key's value if it is a JSON string (false if
// the member is missing or not a string), as the generic decoder reads
// it.
func (o *RawObject) String(key string) (string, bool) {
	v := o.member(key)
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1]), true
	}
	var s string
	if err := gojson.Unmarshal(v, &s); err != nil {
		return "", false
	}
	return s, true
}

// Stamp sets the member key to the string value: written first, in place
// of the client's member of that name, when the object is encoded.
func (o *RawObject) Stamp(key, value string) { o.stampK, o.stampV = key, value }

// Len is the size of the client's JSON, what forwarding it costs.
func (o *RawObject) Len() int { return len(o.raw) }

// Decode returns the object as the generic decoder would have (with the
// stamp applied), for code that inspects its contents.
func (o *RawObject) Decode() map[string]any {
	var out map[string]any
	if err := gojson.Unmarshal(o.appendJSON(nil), &out); err != nil {
		return nil // cannot happen: validated when decoded
	}
	return out
}

// scan finds the top-level members of raw (valid JSON, an object) and applies
// the generic path's value checks: nesting depth (the argument list and the
// object count, as in withinDepth) and numbers within float64, which
// encoding/json refuses past (1e400).
func (o *RawObject) scan() bool {
	b := o.raw
	depth := 0
	memberStart := -1
	keyStart, keyEnd := -1, -1
	end := func(i int) bool { // member ends before b[i]
		if memberStart < 0 {
			return true
		}
		if len(o.members) == maxObjectMembers {
			return false
		}
		key := b[keyStart+1 : keyEnd-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			return false // an escaped key might spell one read or stamped
		}
		for _, m := range o.members {
			if bytes.Equal(b[m[2]:m[3]], key) {
				return false // repeated: the generic path keeps the last
			}
		}
		o.members = append(o.members, [4]int{memberStart, i, keyStart + 1, keyEnd - 1})
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

// MarshalJSON writes the object, so any encoder forwards it unchanged but
// for the stamp.
func (o *RawObject) MarshalJSON() ([]byte, error) { return o.appendJSON(nil), nil }

// appendJSON appends the object: the stamped member first, then the
// client's other members as it wrote them.
func (o *RawObject) appendJSON(b []byte) []byte {
	b = append(b, '{')
	wrote := false
	if o.stampK != "" {
		b = appendJSONString(b, o.stampK)
		b = append(b, ':')
		b = appendJSONString(b, o.stampV)
		wrote = true
	}
	for _, m := range o.members {
		if o.stampK != "" && string(o.raw[m[2]:m[3]]) == o.stampK {
			continue
		}
		if wrote {
			b = append(b, ',')
		}
		b = append(b, bytes.TrimSpace(o.raw[m[0]:m[1]])...)
		wrote = true
	}
	return append(b, '}')
}
