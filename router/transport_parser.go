package router

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

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
	log *slog.Logger
}

// NewEncoder returns the router's encoder: outgoing packets are ours, and
// never binary.
func (p *wireParser) NewEncoder() parser.Encoder { return wireEncoder{} }

// NewDecoder returns a strict decoder for one client connection.
func (p *wireParser) NewDecoder() parser.Decoder {
	d := &wireDecoder{EventEmitter: types.NewEventEmitter(), inner: parser.NewDecoder(), log: p.log}
	_ = d.inner.On("decoded", d.onInnerDecoded)
	return d
}

// wireDecoder wraps the v3.0.6 decoder and only lets through what the
// dispatcher can handle without type checks on the envelope.
//
// What v3.0.6 already refuses (error => connection closed): an EVENT without
// payload ("2", "21"), a payload that is not a non-empty array ("2[]",
// "2{}", `2"x"`), an array whose first element is neither a string nor a
// number ("2[null]"), reserved names ("2[\"connect\"]"), unknown packet types,
// malformed JSON, JSON nested over 10 000 levels (encoding/json's own limit,
// checked while scanning, so 100 000 nested arrays fail fast), an ACK whose
// payload is not an array.
//
// What it lets through and this decoder refuses: numeric event names
// ("2[1]"), BINARY_EVENT/BINARY_ACK (including "50-[..]" with zero
// attachments, which it emits at once), binary frames, an ACK without id
// ("3[]", which the library just drops), CONNECT_ERROR sent by a client, and
// payloads nested deeper than maxEventDepth.
//
// Known leniency kept from the library: bytes after the JSON value are
// ignored (json.Decoder reads one value), e.g. `2["a"]xyz` decodes as ["a"].
type wireDecoder struct {
	types.EventEmitter // the library's Client listens for "decoded" here

	inner parser.Decoder
	log   *slog.Logger

	mu      sync.Mutex     // serialises Add; held while "decoded" is emitted to keep wire order
	decoded *parser.Packet // set by onInnerDecoded during inner.Add
	refused error          // set by onInnerDecoded during inner.Add
}

// Add decodes one engine.io message. Anything refused returns an error, which
// makes the library close the connection.
func (d *wireDecoder) Add(data any) error {
	switch data.(type) {
	case string, *strings.Reader, *types.StringBuffer:
	default: // []byte, *types.BytesBuffer, io.Reader...: a binary frame
		return d.refuse(errWireBinary)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	d.decoded, d.refused = nil, nil
	err := d.inner.Add(data)
	p, refused := d.decoded, d.refused
	d.decoded, d.refused = nil, nil
	switch {
	case err != nil:
		return d.refuse(fmt.Errorf("decode socket.io packet: %w", err))
	case refused != nil:
		return d.refuse(refused)
	case p == nil:
		// A text packet always decodes or fails; silence means the inner
		// decoder started reconstructing a binary packet with attachments.
		return d.refuse(errWireBinary)
	}
	d.Emit("decoded", p)
	return nil
}

// onInnerDecoded runs synchronously inside inner.Add.
func (d *wireDecoder) onInnerDecoded(args ...any) {
	var p *parser.Packet
	if len(args) > 0 {
		p, _ = args[0].(*parser.Packet)
	}
	if p == nil {
		d.refused = errWirePacketType
		return
	}
	if err := checkClientPacket(p); err != nil {
		d.refused = err
		return
	}
	d.decoded = p
}

// refuse logs the reason at debug level (clients can trigger it at will) and
// returns it wrapped for Client.onerror.
func (d *wireDecoder) refuse(err error) error {
	if d.log != nil {
		d.log.Debug("socket.io packet refused, closing connection", "reason", err)
	}
	return fmt.Errorf("refused client packet: %w", err)
}

// Destroy releases the inner decoder's reconstruction state.
func (d *wireDecoder) Destroy() { d.inner.Destroy() }

// checkClientPacket validates a packet that the library decoder accepted.
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
