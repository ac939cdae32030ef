package sio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"
	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// maxEventDepth caps how deeply arrays/objects may nest inside an EVENT or ACK
// payload (the outer argument array is level 1). encoding/json already stops
// at 10 000 levels ("exceeded max depth"), which keeps decoding itself safe,
// but a 9 999-level value would still be walked recursively by the encoder
// when relayed and by rule evaluation. Signaling payloads ({type, sdp},
// ICE candidates) are 2-3 levels deep.
const maxEventDepth = 32

// Reasons a packet is refused. Returning any error from Decoder.Add makes the
// library's Client.onerror emit "error" on the connection's sockets and close
// the engine connection; the server keeps running.
var (
	errWireBinary     = errors.New("binary packets are not accepted")
	errWireEvent      = errors.New("event payload must be a non-empty array whose first element is the event name string")
	errWireAck        = errors.New("ack packet must carry an id and an array payload")
	errWireDepth      = fmt.Errorf("payload nests deeper than %d levels", maxEventDepth)
	errWirePacketType = errors.New("packet type not accepted from a client")
)

// wireParser is the socket.io parser given to opts.SetParser: wireEncoder
// writes, wireDecoder reads.
type wireParser struct {
	log         *slog.Logger
	passThrough []passThroughEvent // Server.passThrough
}

// NewEncoder returns the server's encoder: outgoing packets are ours, and
// never binary.
func (p *wireParser) NewEncoder() parser.Encoder { return wireEncoder{} }

// NewDecoder returns a strict decoder for one client connection.
func (p *wireParser) NewDecoder() parser.Decoder {
	return &wireDecoder{EventEmitter: types.NewEventEmitter(), log: p.log, passThrough: p.passThrough}
}

// wireDecoder reads client packets and only lets through what the Handler
// can handle without type checks on the envelope. It parses the text form
// itself (<type>[/nsp,][id][json]) with the library decoder's rules, reading
// the engine's buffer in place and decoding the JSON once with goccy/go-json
// (encoding/json's semantics, 3-4x faster into `any`; fuzzed against it in
// FuzzDecodeJSON), where the library copied the frame twice (once only for
// a debug log line) and streamed it through a json.Decoder: decoding was the
// largest cost of a relayed 4 KB SDP after the engine's own reads.
//
// Refused (error => the library closes the connection): binary frames and
// BINARY_EVENT/BINARY_ACK, unknown packet types, an over-long namespace or
// id, malformed JSON or bytes after it (`2["a"]xyz`), JSON nested over
// 10 000 levels (encoding/json's own limit, checked while scanning), an EVENT
// whose payload is not a non-empty array starting with a non-reserved event
// name string ("2", "2[]", "2{}", "2[1]", "2[null]", `2["connect"]`), an ACK
// without id or array payload, CONNECT with a payload that is not an object,
// DISCONNECT with a payload, CONNECT_ERROR from a client, and payloads nested
// deeper than maxEventDepth.
type wireDecoder struct {
	types.EventEmitter // the library's Client listens for "decoded" here

	log         *slog.Logger
	passThrough []passThroughEvent
	mu          sync.Mutex // serialises Add; held while "decoded" is emitted to keep wire order
}

// Limits of the library decoder's defaults, kept.
const (
	maxNamespaceLength = 512
	maxPacketIDLength  = 20
)

// Add decodes one engine.io message. Anything refused returns an error, which
// makes the library close the connection.
func (d *wireDecoder) Add(data any) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var frame []byte
	switch v := data.(type) {
	case *types.StringBuffer:
		frame = v.Bytes()
	case string:
		frame = []byte(v)
	case *strings.Reader:
		b, err := io.ReadAll(v)
		if err != nil {
			return d.refuse(err)
		}
		frame = b
	default: // []byte, *types.BytesBuffer, io.Reader...: a binary frame
		return d.refuse(errWireBinary)
	}
	p, payload, obj, err := decodeFrame(frame, d.passThrough, false) // handled later: a copy
	if err == nil {
		err = checkClientPacket(p)
	}
	if err != nil {
		return d.refuse(err)
	}
	if p.Type == parser.EVENT {
		// The library hands an EVENT's data, with the ack callback
		// appended, to the socket's middleware (libraryEvent), and reads
		// nothing in it but for a debug log: it carries the Event. The
		// JSON goes along as a copy, for Event.Verbatim: the library
		// handles the packet later, on the socket's task queue, when the
		// engine may have reused frame. (directEvent, which handles the
		// event before it returns, reads it in place.)
		var text []byte
		if obj == nil { // a RawObject is its own copy, and never forwarded whole
			text = bytes.Clone(payload)
		}
		p.Data = []any{newEvent(p.Data.([]any), obj, text)}
	}
	d.Emit("decoded", p)
	return nil
}

// newEvent is the Event of decoded EVENT data (name first).
func newEvent(data []any, obj *RawObject, text []byte) *Event {
	ev := &Event{Name: data[0].(string), Args: data[1:], Object: obj, text: text}
	if obj != nil {
		ev.Args = nil
	}
	return ev
}

var (
	errWireType      = errors.New("unknown packet type")
	errWireNamespace = errors.New("illegal namespace")
	errWireID        = errors.New("illegal packet id")
	errWirePayload   = errors.New("invalid payload")
)

// decodeText parses one text packet as socket.io-parser v4 writes it.
func decodeText(b []byte) (*parser.Packet, error) {
	p, _, _, err := decodeFrame(b, nil, false)
	return p, err
}

// decodeFrame is decodeText that also returns the packet's JSON text, a
// part of b, and for an EVENT named in passThrough whose argument is one
// object, that object undecoded (obj; the packet's data is then the name
// alone). With borrow that object reads b itself (decodeObject).
func decodeFrame(b []byte, passThrough []passThroughEvent, borrow bool) (_ *parser.Packet, jsonText []byte, obj *RawObject, _ error) {
	if len(b) == 0 || b[0] < '0' || b[0] > '6' {
		return nil, nil, nil, errWireType
	}
	p := &parser.Packet{Type: parser.PacketType(b[0] - '0'), Nsp: "/"}
	if p.Type == parser.BINARY_EVENT || p.Type == parser.BINARY_ACK {
		return nil, nil, nil, errWireBinary
	}
	b = b[1:]
	if len(b) > 0 && b[0] == '/' {
		end := bytes.IndexByte(b, ',')
		nsp := b
		if end >= 0 {
			nsp, b = b[:end], b[end+1:]
		} else {
			b = nil
		}
		if len(nsp) > maxNamespaceLength {
			return nil, nil, nil, errWireNamespace
		}
		p.Nsp = string(nsp)
	}
	digits := 0
	for digits < len(b) && b[digits] >= '0' && b[digits] <= '9' {
		digits++
	}
	if digits > 0 {
		if digits > maxPacketIDLength {
			return nil, nil, nil, errWireID
		}
		id, err := strconv.ParseUint(string(b[:digits]), 10, 64)
		if err != nil {
			return nil, nil, nil, errWireID
		}
		p.Id, b = &id, b[digits:]
	}
	if p.Type == parser.EVENT {
		for _, pt := range passThrough {
			if o, ok := decodeObject(b, pt.prefix, borrow); ok {
				p.Data = pt.data
				return p, b, o, nil
			}
		}
	}
	var payload any
	if len(b) > 0 {
		if err := gojson.Unmarshal(b, &payload); err != nil {
			return nil, nil, nil, errWirePayload
		}
	}
	switch p.Type {
	case parser.CONNECT:
		if _, ok := payload.(map[string]any); payload != nil && !ok {
			return nil, nil, nil, errWirePayload
		}
	case parser.DISCONNECT:
		if payload != nil || len(b) > 0 {
			return nil, nil, nil, errWirePayload
		}
	case parser.EVENT:
		args, ok := payload.([]any)
		if !ok || len(args) == 0 {
			return nil, nil, nil, errWireEvent
		}
		if name, ok := args[0].(string); !ok || parser.ReservedEvents.Has(name) {
			return nil, nil, nil, errWireEvent
		}
	}
	p.Data = payload
	return p, b, nil, nil
}

// verbatim returns args (decoded from text, the event's JSON array, name
// first) for forwarding: see Event.Verbatim.
func verbatim(text []byte, args []any) []any {
	if len(args) == 0 || text == nil {
		return args
	}
	raws := make([]RawJSON, len(args))
	if !splitArray(text, raws) {
		clear(raws) // cannot happen: the values were decoded from it
	}
	size := 0
	for i := range raws {
		size += len(raws[i].raw)
	}
	own := make([]byte, 0, size)
	out := make([]any, len(args))
	for i, v := range args {
		raw := &raws[i]
		if raw.raw == nil || !utf8.Valid(raw.raw) {
			out[i] = v
			continue
		}
		start := len(own)
		own = append(own, raw.raw...)
		raw.Value, raw.raw = v, own[start:len(own):len(own)]
		out[i] = raw
	}
	return out
}

// splitArray sets raws[i].raw to the text of element i+1 of the JSON array
// b (an EVENT's, valid JSON), and reports whether b has exactly len(raws)+1
// elements. Element 0, the event name, is skipped.
func splitArray(b []byte, raws []RawJSON) bool {
	open := bytes.IndexByte(b, '[')
	if open < 0 {
		return false
	}
	depth, start, n := 0, open+1, 0
	element := func(end int) bool {
		if n > len(raws) {
			return false
		}
		if n > 0 {
			raws[n-1].raw = bytes.TrimSpace(b[start:end])
		}
		n++
		start = end + 1
		return true
	}
	for i := open + 1; i < len(b); i++ {
		switch b[i] {
		case '"':
			if i = closingQuote(b, i); i < 0 {
				return false
			}
		case '[', '{':
			depth++
		case ']', '}':
			if depth > 0 {
				depth--
				continue
			}
			return element(i) && n == len(raws)+1
		case ',':
			if depth == 0 && !element(i) {
				return false
			}
		}
	}
	return false
}

// refuse logs the reason at debug level (clients can trigger it at will) and
// returns it wrapped for Client.onerror.
func (d *wireDecoder) refuse(err error) error {
	if d.log != nil {
		d.log.Debug("socket.io packet refused, closing connection", "reason", err)
	}
	return fmt.Errorf("refused client packet: %w", err)
}

// Destroy has nothing to release: the decoder keeps no state between
// packets (binary reconstruction is refused).
func (d *wireDecoder) Destroy() {}

// checkClientPacket validates a decoded packet further: the envelope shapes
// the Handler relies on, and the nesting depth.
func checkClientPacket(p *parser.Packet) error {
	switch p.Type {
	case parser.CONNECT, parser.DISCONNECT:
		return nil // the library checks their payloads (object or nothing)
	case parser.EVENT:
		args, ok := p.Data.([]any)
		if !ok || len(args) == 0 {
			return errWireEvent
		}
		if _, ok := args[0].(string); !ok {
			return errWireEvent
		}
		if !withinDepth(args, maxEventDepth) {
			return errWireDepth
		}
		return nil
	case parser.ACK:
		args, ok := p.Data.([]any)
		if !ok || p.Id == nil {
			return errWireAck
		}
		if !withinDepth(args, maxEventDepth) {
			return errWireDepth
		}
		return nil
	case parser.BINARY_EVENT, parser.BINARY_ACK:
		return errWireBinary
	default: // CONNECT_ERROR is server-to-client only
		return errWirePacketType
	}
}

// withinDepth reports whether v (a value produced by encoding/json) nests at
// most limit levels of arrays/objects. Recursion is bounded by limit.
func withinDepth(v any, limit int) bool {
	switch x := v.(type) {
	case []any:
		if limit <= 0 {
			return false
		}
		for _, e := range x {
			if !withinDepth(e, limit-1) {
				return false
			}
		}
	case map[string]any:
		if limit <= 0 {
			return false
		}
		for _, e := range x {
			if !withinDepth(e, limit-1) {
				return false
			}
		}
	}
	return true
}
