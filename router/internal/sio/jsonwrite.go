package sio

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// RawJSON is one argument of a client's event as it is forwarded
// (Event.Verbatim): the JSON the client wrote for it, which the encoder
// writes verbatim, and Value, what it decodes to. An event forwarded this
// way reaches its receivers as its client sent it, key order included, as
// a Node server forwards it (its decoded objects keep their keys in the
// order they came, where a Go map sorts them). raw is its own copy: the
// library may keep a sent packet for connection state recovery's replay,
// long after the buffer the event was read into has been reused.
type RawJSON struct {
	Value any
	raw   []byte // one JSON value, valid UTF-8, without surrounding whitespace
}

// MarshalJSON writes the client's JSON, so that any encoder forwards it
// verbatim.
func (r *RawJSON) MarshalJSON() ([]byte, error) { return r.raw, nil }

// AppendJSON appends v's JSON as the server sends it: see appendJSON. ok
// is false where encoding/json would fail (NaN).
func AppendJSON(b []byte, v any) (_ []byte, ok bool) { return appendJSON(b, v) }

// appendJSON appends v as encoding/json would marshal it, byte for byte,
// for the values the server sends: decoded JSON (maps, lists, strings,
// float64s, bools, nil) and what handlers build from it (ints, []string).
// The client's own JSON (a RawObject, a RawJSON) is written
// as it came.
// encoding/json reaches every map through reflection and allocates per
// key; this walk allocates only the sorted key list of each map. Any other
// type goes to encoding/json. ok is false where json.Marshal fails (NaN).
func appendJSON(b []byte, v any) (_ []byte, ok bool) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), true
	case string:
		return appendJSONString(b, v), true
	case *RawObject:
		return v.appendJSON(b), true
	case *RawJSON: // a client's argument, forwarded as it sent it
		return append(b, v.raw...), true
	case bool:
		return strconv.AppendBool(b, v), true
	case float64:
		return appendJSONFloat(b, v)
	case int:
		return strconv.AppendInt(b, int64(v), 10), true
	case int64:
		return strconv.AppendInt(b, v, 10), true
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			if b, ok = appendJSON(b, v[k]); !ok {
				return b, false
			}
		}
		return append(b, '}'), true
	case []any:
		return appendJSONList(b, v, appendJSON)
	case []string:
		return appendJSONList(b, v, func(b []byte, s string) ([]byte, bool) { return appendJSONString(b, s), true })
	}
	j, err := json.Marshal(v)
	if err != nil {
		return b, false
	}
	return append(b, j...), true
}

// appendJSONList writes a list as encoding/json does (nil is null), each
// element with elem.
func appendJSONList[T any](b []byte, list []T, elem func([]byte, T) ([]byte, bool)) (_ []byte, ok bool) {
	if list == nil {
		return append(b, "null"...), true
	}
	b = append(b, '[')
	for i, e := range list {
		if i > 0 {
			b = append(b, ',')
		}
		if b, ok = elem(b, e); !ok {
			return b, false
		}
	}
	return append(b, ']'), true
}

// appendJSONFloat formats like encoding/json: %f in the usual range,
// exponent form outside it with a two-digit exponent trimmed (1e-07 →
// 1e-7).
func appendJSONFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		n := len(b) - start
		if n >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
			b[len(b)-2] = b[len(b)-1]
			b = b[:len(b)-1]
		}
	}
	return b, true
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does with HTML escaping on:
// <, > and & as \u00XX, U+2028 and U+2029 escaped, invalid UTF-8 as
// U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
