package redisbus

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// maxDepth bounds nesting both ways: deep enough for any real payload,
// shallow enough that a hostile message (or a slice that contains itself)
// cannot exhaust the stack.
const maxDepth = 256

// maxSafeInt is 2^53, the largest range in which every integer is a
// JavaScript number: integral floats inside it are sent as msgpack integers,
// as notepack.io sends them.
const maxSafeInt = 1 << 53

var errTooDeep = errors.New("nested deeper than 256 levels")

// encodeValue writes one JSON-like value as msgpack.
func encodeValue(e *msgpack.Encoder, v any, depth int) error {
	if depth > maxDepth {
		return errTooDeep
	}
	switch v := v.(type) {
	case nil:
		return e.EncodeNil()
	case bool:
		return e.EncodeBool(v)
	case string:
		return e.EncodeString(v)
	case float64:
		return encodeFloat(e, v)
	case float32:
		return encodeFloat(e, float64(v))
	case int:
		return e.EncodeInt(int64(v))
	case int8:
		return e.EncodeInt(int64(v))
	case int16:
		return e.EncodeInt(int64(v))
	case int32:
		return e.EncodeInt(int64(v))
	case int64:
		return e.EncodeInt(v)
	case uint:
		return e.EncodeUint(uint64(v))
	case uint8:
		return e.EncodeUint(uint64(v))
	case uint16:
		return e.EncodeUint(uint64(v))
	case uint32:
		return e.EncodeUint(uint64(v))
	case uint64:
		return e.EncodeUint(v)
	case json.Number:
		n, err := jsonNumber(v)
		if err != nil {
			return err
		}
		return encodeValue(e, n, depth)
	case []byte:
		return e.EncodeBytes(v)
	case []any:
		if err := e.EncodeArrayLen(len(v)); err != nil {
			return err
		}
		for i, item := range v {
			if err := encodeValue(e, item, depth+1); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return nil
	case []string:
		if err := e.EncodeArrayLen(len(v)); err != nil {
			return err
		}
		for _, s := range v {
			if err := e.EncodeString(s); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		if err := e.EncodeMapLen(len(v)); err != nil {
			return err
		}
		for k, item := range v {
			if err := e.EncodeString(k); err != nil {
				return err
			}
			if err := encodeValue(e, item, depth+1); err != nil {
				return fmt.Errorf("%q: %w", k, err)
			}
		}
		return nil
	case json.Marshaler:
		raw, err := v.MarshalJSON()
		if err != nil {
			return fmt.Errorf("marshal %T: %w", v, err)
		}
		return encodeJSON(e, raw, depth)
	default:
		// Structs, typed maps and slices: whatever encoding/json makes of
		// them, which is what a client would have received as JSON.
		raw, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode %T: %w", v, err)
		}
		return encodeJSON(e, raw, depth)
	}
}

// encodeFloat sends integral values as integers, byte for byte what
// notepack.io produces for the same JavaScript number.
func encodeFloat(e *msgpack.Encoder, f float64) error {
	if f == math.Trunc(f) && f >= -maxSafeInt && f <= maxSafeInt {
		return e.EncodeInt(int64(f))
	}
	return e.EncodeFloat64(f)
}

// encodeJSON encodes JSON text as the msgpack of the value it holds.
func encodeJSON(e *msgpack.Encoder, raw []byte, depth int) error {
	v, err := decodeJSON(raw)
	if err != nil {
		return err
	}
	return encodeValue(e, v, depth)
}

// decodeJSON parses JSON text into JSON-like values with the numbers the bus
// hands out for msgpack (int64 for integers, else float64), so a value means
// the same whether it came as JSON or as msgpack.
func decodeJSON(raw []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode JSON: %w", err)
	}
	if d.More() {
		return nil, errors.New("decode JSON: trailing data")
	}
	return fixNumbers(v), nil
}

// fixNumbers replaces json.Number in place with int64 or float64.
func fixNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		n, err := jsonNumber(v)
		if err != nil {
			return nil // unreachable: the decoder validated the literal
		}
		return n
	case []any:
		for i, item := range v {
			v[i] = fixNumbers(item)
		}
	case map[string]any:
		for k, item := range v {
			v[k] = fixNumbers(item)
		}
	}
	return v
}

func jsonNumber(n json.Number) (any, error) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return i, nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return nil, fmt.Errorf("number %q: %w", string(n), err)
	}
	return f, nil
}

// decoder reads JSON-like values from one msgpack message at a time. The
// message is held in a strings.Reader, whose Len bounds every length the
// message claims: a header announcing four billion elements in a 20-byte
// message is refused before anything is allocated for it. (The msgpack
// library's own DecodeString and DecodeBytes trust the header: DecodeBytes
// allocates the claimed length, and a reused Decoder's buffer grows by 1 MB
// for every string that claims more than the message holds.) One decoder
// belongs to one goroutine and is reused for every message.
type decoder struct {
	d       *msgpack.Decoder
	r       strings.Reader
	payload string
}

func newDecoder() *decoder {
	vd := &decoder{}
	vd.d = msgpack.NewDecoder(&vd.r)
	return vd
}

func (vd *decoder) reset(payload string) {
	vd.payload = payload
	vd.r.Reset(payload)
	vd.d.Reset(&vd.r)
}

// decodeValue decodes a whole message holding one value.
func (vd *decoder) decodeValue(payload string) (any, error) {
	vd.reset(payload)
	v, err := vd.value(0)
	if err != nil {
		return nil, err
	}
	if vd.r.Len() != 0 {
		return nil, fmt.Errorf("%d trailing bytes", vd.r.Len())
	}
	return v, nil
}

// strView reads a msgpack string as a view into the payload: for keys and
// names that are compared and not kept, so they cost no allocation. The
// decoder reads the payload's strings.Reader directly (it is an
// io.ByteScanner, so msgpack adds no buffer of its own), which makes
// skipping the string's bytes with Seek exact.
func (vd *decoder) strView() (string, error) {
	c, err := vd.d.PeekCode()
	if err != nil {
		return "", err
	}
	if !msgpcode.IsString(c) {
		return "", fmt.Errorf("msgpack code 0x%02x, want a string", c)
	}
	n, err := vd.d.DecodeBytesLen()
	if err != nil {
		return "", err
	}
	if n > vd.r.Len() {
		return "", fmt.Errorf("string of %d bytes in %d", n, vd.r.Len())
	}
	off := len(vd.payload) - vd.r.Len()
	if _, err := vd.r.Seek(int64(n), io.SeekCurrent); err != nil {
		return "", err
	}
	return vd.payload[off : off+n], nil
}

// str reads a msgpack string to keep: a copy, so that what a handler keeps
// does not pin the whole message in memory.
func (vd *decoder) str() (string, error) {
	s, err := vd.strView()
	return strings.Clone(s), err
}

func (vd *decoder) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, errTooDeep
	}
	d := vd.d
	c, err := d.PeekCode()
	if err != nil {
		return nil, err
	}
	switch {
	case c == msgpcode.Nil:
		return nil, d.DecodeNil()
	case c == msgpcode.False || c == msgpcode.True:
		return d.DecodeBool()
	case c == msgpcode.Uint64:
		u, err := d.DecodeUint64()
		if err != nil {
			return nil, err
		}
		if u > math.MaxInt64 {
			return float64(u), nil
		}
		return int64(u), nil
	case msgpcode.IsFixedNum(c), c >= msgpcode.Uint8 && c <= msgpcode.Int64:
		return d.DecodeInt64()
	case c == msgpcode.Float || c == msgpcode.Double:
		return d.DecodeFloat64()
	case msgpcode.IsString(c):
		return vd.str()
	case msgpcode.IsBin(c):
		// Not DecodeBytes: it allocates the claimed length before reading.
		n, err := d.DecodeBytesLen()
		if err != nil {
			return nil, err
		}
		if n > vd.r.Len() {
			return nil, fmt.Errorf("binary of %d bytes in %d", n, vd.r.Len())
		}
		b := make([]byte, n)
		return b, d.ReadFull(b)
	case msgpcode.IsFixedArray(c), c == msgpcode.Array16, c == msgpcode.Array32:
		return vd.array(depth)
	case msgpcode.IsFixedMap(c), c == msgpcode.Map16, c == msgpcode.Map32:
		return vd.object(depth)
	case msgpcode.IsExt(c):
		return vd.ext()
	default:
		return nil, fmt.Errorf("invalid msgpack code 0x%02x", c)
	}
}

func (vd *decoder) array(depth int) ([]any, error) {
	n, err := vd.d.DecodeArrayLen()
	if err != nil {
		return nil, err
	}
	if n > vd.r.Len() { // every element takes at least one byte
		return nil, fmt.Errorf("array of %d elements in %d bytes", n, vd.r.Len())
	}
	out := make([]any, n)
	for i := range out {
		if out[i], err = vd.value(depth + 1); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (vd *decoder) object(depth int) (map[string]any, error) {
	n, err := vd.d.DecodeMapLen()
	if err != nil {
		return nil, err
	}
	if 2*n > vd.r.Len() { // a key and a value take a byte each at least
		return nil, fmt.Errorf("map of %d entries in %d bytes", n, vd.r.Len())
	}
	out := make(map[string]any, n)
	for range n {
		k, err := vd.str()
		if err != nil {
			return nil, fmt.Errorf("map key: %w", err)
		}
		if out[k], err = vd.value(depth + 1); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ext decodes the two extension types notepack.io produces: timestamps
// (JavaScript Dates) and its legacy encoding of undefined.
func (vd *decoder) ext() (any, error) {
	id, n, err := vd.d.DecodeExtHeader()
	if err != nil {
		return nil, err
	}
	if n > vd.r.Len() {
		return nil, fmt.Errorf("extension of %d bytes in %d", n, vd.r.Len())
	}
	b := make([]byte, n)
	if err := vd.d.ReadFull(b); err != nil {
		return nil, err
	}
	switch {
	case id == 0 && n == 1: // undefined, which JSON writes as null
		return nil, nil
	case id == -1:
		t, err := timestamp(b)
		if err != nil {
			return nil, err
		}
		// Date.prototype.toJSON: what a Node server sends its clients.
		return t.UTC().Format("2006-01-02T15:04:05.000Z"), nil
	default:
		return nil, fmt.Errorf("unsupported msgpack extension %d", id)
	}
}

// timestamp reads msgpack's timestamp extension in its 32, 64 and 96-bit
// forms.
func timestamp(b []byte) (time.Time, error) {
	switch len(b) {
	case 4:
		return time.Unix(int64(binary.BigEndian.Uint32(b)), 0), nil
	case 8:
		v := binary.BigEndian.Uint64(b)
		return time.Unix(int64(v&(1<<34-1)), int64(v>>34)), nil
	case 12:
		ns := binary.BigEndian.Uint32(b)
		s := int64(binary.BigEndian.Uint64(b[4:]))
		return time.Unix(s, int64(ns)), nil
	default:
		return time.Time{}, fmt.Errorf("timestamp of %d bytes", len(b))
	}
}
