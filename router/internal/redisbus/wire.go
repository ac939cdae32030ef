package redisbus

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Packet types of socket.io-parser that a broadcast may carry: the Node
// adapter publishes the packet as its BroadcastOperator built it (EVENT, even
// with binary arguments); BINARY_EVENT is accepted in case another
// implementation sends what goes on the client wire.
const (
	packetEvent       = 2
	packetBinaryEvent = 5
)

// Request types of @socket.io/redis-adapter (its RequestType enum).
const (
	reqSockets          = 0
	reqAllRooms         = 1
	reqRemoteJoin       = 2
	reqRemoteLeave      = 3
	reqRemoteDisconnect = 4
	reqRemoteFetch      = 5
	reqServerSideEmit   = 6
	reqBroadcast        = 7
	resBroadcastCount   = 8
)

// reservedEvents are the names socket.io refuses to emit, because clients
// treat them as lifecycle events; the emitter and the server both throw.
var reservedEvents = map[string]bool{
	"connect":        true,
	"connect_error":  true,
	"disconnect":     true,
	"disconnecting":  true,
	"newListener":    true,
	"removeListener": true,
}

// channels holds the names derived from the prefix and namespace, computed
// once.
type channels struct {
	broadcast string // "socket.io#/#"; single-room broadcasts append "ROOM#"
	pattern   string // broadcast + "*", with glob characters escaped
	request   string // "socket.io-request#/#"
	response  string // "socket.io-response#/#"
}

func newChannels(prefix, nsp string) channels {
	c := channels{
		broadcast: prefix + "#" + nsp + "#",
		request:   prefix + "-request#" + nsp + "#",
		response:  prefix + "-response#" + nsp + "#",
	}
	c.pattern = globEscape(c.broadcast) + "*"
	return c
}

// globEscape quotes the characters PSUBSCRIBE treats as a pattern, so a
// prefix or namespace holding them still matches only itself.
func globEscape(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// channelFor is where a broadcast goes: the room's own channel when it
// targets exactly one room, so Node nodes without that room skip decoding it.
func (c channels) channelFor(rooms []string) string {
	if len(rooms) == 1 {
		return c.broadcast + rooms[0] + "#"
	}
	return c.broadcast
}

// encoder is a reusable msgpack encoder with its buffer, pooled so that
// Publish allocates nothing for the encoding in the steady state.
type encoder struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

var encoders = sync.Pool{New: func() any {
	e := &encoder{}
	e.enc = msgpack.NewEncoder(&e.buf)
	return e
}}

// maxPooledBuffer keeps one huge broadcast from pinning its buffer in the
// pool forever.
const maxPooledBuffer = 64 << 10

func getEncoder() *encoder {
	e := encoders.Get().(*encoder)
	e.buf.Reset()
	return e
}

func putEncoder(e *encoder) {
	if e.buf.Cap() <= maxPooledBuffer {
		encoders.Put(e)
	}
}

// encodeBroadcast writes [uid, packet, opts] as the Node adapter does. The
// encoder writes to a bytes.Buffer, which cannot fail, so only the
// arguments' errors (an unencodable value) are checked. Only set flags are
// written: a Node SessionAwareAdapter reads
// `flags.volatile === undefined` as "not volatile", so false must be absent.
func encodeBroadcast(e *msgpack.Encoder, uid, nsp string, b *Broadcast, rooms, except []string) error {
	_ = e.EncodeArrayLen(3)
	_ = e.EncodeString(uid)

	_ = e.EncodeMapLen(3)
	_ = e.EncodeString("type")
	_ = e.EncodeInt(packetEvent)
	_ = e.EncodeString("data")
	_ = e.EncodeArrayLen(1 + len(b.Args))
	_ = e.EncodeString(b.Event)
	for i, a := range b.Args {
		if err := encodeValue(e, a, 1); err != nil {
			return fmt.Errorf("argument %d: %w", i, err)
		}
	}
	_ = e.EncodeString("nsp")
	_ = e.EncodeString(nsp)

	_ = e.EncodeMapLen(3)
	_ = e.EncodeString("rooms")
	encodeStrings(e, rooms)
	_ = e.EncodeString("except")
	encodeStrings(e, except)
	_ = e.EncodeString("flags")
	n := 0
	if b.Volatile {
		n++
	}
	if b.Tag != "" {
		n++
	}
	_ = e.EncodeMapLen(n)
	if b.Volatile {
		_ = e.EncodeString("volatile")
		_ = e.EncodeBool(true)
	}
	if b.Tag != "" {
		_ = e.EncodeString("tag")
		_ = e.EncodeString(b.Tag)
	}
	return nil
}

// encodeStrings writes a list of room names (not through encodeValue, whose
// interface argument would box the slice).
func encodeStrings(e *msgpack.Encoder, list []string) {
	_ = e.EncodeArrayLen(len(list))
	for _, s := range list {
		_ = e.EncodeString(s)
	}
}

// errOwn marks a message this bus published itself; it is skipped, not
// logged.
var errOwn = errors.New("own message")

// decodeBroadcast reads a message from the broadcast channels. The sender's
// UID is read first so that this bus's own messages, which every publish
// echoes back, are skipped before their payload is decoded. The envelope
// (packet and opts) is read field by field rather than as generic maps:
// every node decodes every broadcast, and this halves the allocations.
func decodeBroadcast(vd *decoder, payload, ownUID, nsp string) (Broadcast, error) {
	vd.reset(payload)
	d := vd.d
	n, err := d.DecodeArrayLen()
	if err != nil {
		return Broadcast{}, fmt.Errorf("message: %w", err)
	}
	if n < 3 {
		return Broadcast{}, fmt.Errorf("message: array of %d elements, want [uid, packet, opts]", n)
	}
	uid, err := vd.strView()
	if err != nil {
		return Broadcast{}, fmt.Errorf("uid: %w", err)
	}
	if uid == ownUID {
		return Broadcast{}, errOwn
	}
	b := Broadcast{From: strings.Clone(uid)}
	if b.Event, b.Args, err = vd.packet(nsp); err != nil {
		return Broadcast{}, fmt.Errorf("packet: %w", err)
	}
	if err := vd.opts(&b); err != nil {
		return Broadcast{}, fmt.Errorf("opts: %w", err)
	}
	for i := 3; i < n; i++ { // extra elements are ignored, as in Node, but must decode
		if _, err := vd.value(1); err != nil {
			return Broadcast{}, fmt.Errorf("message element %d: %w", i, err)
		}
	}
	if vd.r.Len() != 0 {
		return Broadcast{}, fmt.Errorf("message: %d trailing bytes", vd.r.Len())
	}
	return b, nil
}

// mapLen reads a map header, refusing nil and lengths the message cannot
// hold.
func (vd *decoder) mapLen() (int, error) {
	c, err := vd.d.PeekCode()
	if err != nil {
		return 0, err
	}
	if !msgpcode.IsFixedMap(c) && c != msgpcode.Map16 && c != msgpcode.Map32 {
		return 0, fmt.Errorf("msgpack code 0x%02x, want a map", c)
	}
	n, err := vd.d.DecodeMapLen()
	if err != nil {
		return 0, err
	}
	if 2*n > vd.r.Len() {
		return 0, fmt.Errorf("map of %d entries in %d bytes", n, vd.r.Len())
	}
	return n, nil
}

// packet reads {type, data: [event, ...args], nsp}; other keys are decoded
// (so their depth is bounded) and ignored.
func (vd *decoder) packet(nsp string) (event string, args []any, err error) {
	n, err := vd.mapLen()
	if err != nil {
		return "", nil, err
	}
	sawType, sawData, sawNsp := false, false, false
	for range n {
		k, err := vd.strView()
		if err != nil {
			return "", nil, fmt.Errorf("key: %w", err)
		}
		switch k {
		case "type":
			v, err := vd.value(2)
			if err != nil {
				return "", nil, fmt.Errorf("type: %w", err)
			}
			if typ, ok := v.(int64); !ok {
				return "", nil, fmt.Errorf("type: %s, want a number", typeName(v))
			} else if typ != packetEvent && typ != packetBinaryEvent {
				return "", nil, fmt.Errorf("type %d, want an event (2 or 5)", typ)
			}
			sawType = true
		case "data":
			if event, args, err = vd.eventData(); err != nil {
				return "", nil, fmt.Errorf("data: %w", err)
			}
			sawData = true
		case "nsp":
			if c, _ := vd.d.PeekCode(); c == msgpcode.Nil { // Node reads a missing nsp as "/"
				_ = vd.d.DecodeNil()
				continue
			}
			s, err := vd.strView()
			if err != nil {
				return "", nil, fmt.Errorf("nsp: %w", err)
			}
			if s != nsp {
				return "", nil, fmt.Errorf("for namespace %q, this bus serves %q", short(s), nsp)
			}
			sawNsp = true
		default:
			if _, err := vd.value(2); err != nil {
				return "", nil, fmt.Errorf("%q: %w", short(k), err)
			}
		}
	}
	switch {
	case !sawType:
		return "", nil, errors.New("no type")
	case !sawData:
		return "", nil, errors.New("no data")
	case !sawNsp && nsp != "/":
		return "", nil, fmt.Errorf(`for namespace "/", this bus serves %q`, nsp)
	}
	return event, args, nil
}

// eventData reads [event, ...args].
func (vd *decoder) eventData() (event string, args []any, err error) {
	c, err := vd.d.PeekCode()
	if err != nil {
		return "", nil, err
	}
	if !msgpcode.IsFixedArray(c) && c != msgpcode.Array16 && c != msgpcode.Array32 {
		return "", nil, fmt.Errorf("msgpack code 0x%02x, want [event, ...args]", c)
	}
	n, err := vd.d.DecodeArrayLen()
	if err != nil {
		return "", nil, err
	}
	if n < 1 || n > vd.r.Len() {
		return "", nil, fmt.Errorf("array of %d elements in %d bytes, want [event, ...args]", n, vd.r.Len())
	}
	if event, err = vd.str(); err != nil {
		return "", nil, fmt.Errorf("event name: %w", err)
	}
	if n > 1 {
		args = make([]any, n-1)
		for i := range args {
			if args[i], err = vd.value(2); err != nil {
				return "", nil, fmt.Errorf("argument %d: %w", i, err)
			}
		}
	}
	return event, args, nil
}

// opts reads {rooms, except, flags: {volatile}} into b; nil is no options.
func (vd *decoder) opts(b *Broadcast) error {
	if c, err := vd.d.PeekCode(); err != nil {
		return err
	} else if c == msgpcode.Nil {
		return vd.d.DecodeNil()
	}
	n, err := vd.mapLen()
	if err != nil {
		return err
	}
	for range n {
		k, err := vd.strView()
		if err != nil {
			return fmt.Errorf("key: %w", err)
		}
		switch k {
		case "rooms":
			if b.Rooms, err = vd.rooms(); err != nil {
				return fmt.Errorf("rooms: %w", err)
			}
		case "except":
			if b.Except, err = vd.rooms(); err != nil {
				return fmt.Errorf("except: %w", err)
			}
		case "flags":
			if b.Volatile, b.Tag, err = vd.flags(); err != nil {
				return fmt.Errorf("flags: %w", err)
			}
		default:
			if _, err := vd.value(2); err != nil {
				return fmt.Errorf("%q: %w", short(k), err)
			}
		}
	}
	return nil
}

// rooms reads a list of room names, nil for nil or an empty list. Names
// must be strings: socket.io's rooms are strings, and so are the router's.
func (vd *decoder) rooms() ([]string, error) {
	c, err := vd.d.PeekCode()
	if err != nil {
		return nil, err
	}
	if c == msgpcode.Nil {
		return nil, vd.d.DecodeNil()
	}
	if !msgpcode.IsFixedArray(c) && c != msgpcode.Array16 && c != msgpcode.Array32 {
		return nil, fmt.Errorf("msgpack code 0x%02x, want a list", c)
	}
	n, err := vd.d.DecodeArrayLen()
	if err != nil {
		return nil, err
	}
	if n > vd.r.Len() {
		return nil, fmt.Errorf("list of %d in %d bytes", n, vd.r.Len())
	}
	if n == 0 {
		return nil, nil
	}
	out := make([]string, n)
	for i := range out {
		if out[i], err = vd.str(); err != nil {
			return nil, fmt.Errorf("room %d: %w", i, err)
		}
	}
	return out, nil
}

// flags reads the flags map and returns its volatile flag and tag; the
// others (compress, local, timeout) mean nothing to a receiving node.
func (vd *decoder) flags() (volatile bool, tag string, _ error) {
	if c, err := vd.d.PeekCode(); err != nil {
		return false, "", err
	} else if c == msgpcode.Nil {
		return false, "", vd.d.DecodeNil()
	}
	n, err := vd.mapLen()
	if err != nil {
		return false, "", err
	}
	for range n {
		k, err := vd.strView()
		if err != nil {
			return false, "", fmt.Errorf("key: %w", err)
		}
		isVolatile, isTag := k == "volatile", k == "tag"
		v, err := vd.value(3)
		if err != nil {
			return false, "", err
		}
		switch {
		case isVolatile:
			volatile, _ = v.(bool)
		case isTag:
			tag, _ = v.(string)
		}
	}
	return volatile, tag, nil
}

// broadcastFrom interprets a decoded packet and its options, shared by the
// broadcast channel and broadcast-with-ack requests.
func broadcastFrom(packetV, optsV any, nsp string) (Broadcast, error) {
	packet, ok := packetV.(map[string]any)
	if !ok {
		return Broadcast{}, fmt.Errorf("packet: %s, want a map", typeName(packetV))
	}
	if got, ok := packet["nsp"]; ok && got != nil {
		s, ok := got.(string)
		if !ok {
			return Broadcast{}, fmt.Errorf("packet nsp: %s, want a string", typeName(got))
		}
		if s != nsp {
			return Broadcast{}, fmt.Errorf("packet for namespace %q, this bus serves %q", short(s), nsp)
		}
	} else if nsp != "/" { // Node reads a missing nsp as "/"
		return Broadcast{}, fmt.Errorf("packet for namespace \"/\", this bus serves %q", nsp)
	}
	typ, ok := packet["type"].(int64)
	if !ok || (typ != packetEvent && typ != packetBinaryEvent) {
		return Broadcast{}, fmt.Errorf("packet type %v, want an event (2 or 5)", packet["type"])
	}
	data, ok := packet["data"].([]any)
	if !ok || len(data) == 0 {
		return Broadcast{}, fmt.Errorf("packet data: %s, want [event, ...args]", typeName(packet["data"]))
	}
	event, ok := data[0].(string)
	if !ok {
		return Broadcast{}, fmt.Errorf("event name: %s, want a string", typeName(data[0]))
	}
	b := Broadcast{Event: event}
	if len(data) > 1 {
		b.Args = data[1:]
	}
	if optsV == nil {
		return b, nil
	}
	opts, ok := optsV.(map[string]any)
	if !ok {
		return Broadcast{}, fmt.Errorf("opts: %s, want a map", typeName(optsV))
	}
	var err error
	if b.Rooms, err = roomList(opts["rooms"]); err != nil {
		return Broadcast{}, fmt.Errorf("opts rooms: %w", err)
	}
	if b.Except, err = roomList(opts["except"]); err != nil {
		return Broadcast{}, fmt.Errorf("opts except: %w", err)
	}
	switch flags := opts["flags"].(type) {
	case nil:
	case map[string]any:
		b.Volatile, _ = flags["volatile"].(bool)
		b.Tag, _ = flags["tag"].(string)
	default:
		return Broadcast{}, fmt.Errorf("opts flags: %s, want a map", typeName(flags))
	}
	return b, nil
}

// roomList reads a decoded list of room names, as rooms does from msgpack.
func roomList(v any) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s, want a list", typeName(v))
	}
	if len(list) == 0 {
		return nil, nil
	}
	out := make([]string, len(list))
	for i, item := range list {
		s, ok := item.(string)
		if !ok {
			return nil, fmt.Errorf("room %d: %s, want a string", i, typeName(item))
		}
		out[i] = s
	}
	return out, nil
}

// wireRequest is a request decoded from JSON or msgpack, before it is
// checked.
type wireRequest map[string]any

// decodeRequest reads a message from the request channel: JSON when it
// starts with '{' (everything the emitter sends), msgpack otherwise (a
// broadcast with acknowledgements), as the Node adapter decides.
func decodeRequest(vd *decoder, payload string) (wireRequest, error) {
	if strings.HasPrefix(payload, "{") {
		v, err := decodeJSON([]byte(payload))
		if err != nil {
			return nil, err
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("request: %s, want an object", typeName(v))
		}
		return m, nil
	}
	v, err := vd.decodeValue(payload)
	if err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("request: %s, want a map", typeName(v))
	}
	return m, nil
}

// selection reads opts {rooms, except}, which pick the sockets a request
// applies to.
func (w wireRequest) selection() (rooms, except []string, err error) {
	opts, ok := w["opts"].(map[string]any)
	if !ok {
		// Adapters before 6.x sent {sid, room} for one socket; the emitter
		// and the 8.x adapter never do.
		return nil, nil, fmt.Errorf("opts: %s, want a map", typeName(w["opts"]))
	}
	if rooms, err = roomList(opts["rooms"]); err != nil {
		return nil, nil, fmt.Errorf("opts rooms: %w", err)
	}
	if except, err = roomList(opts["except"]); err != nil {
		return nil, nil, fmt.Errorf("opts except: %w", err)
	}
	return rooms, except, nil
}

// short cuts a string from the network for an error message, which must
// stay a line in a log.
func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// typeName describes a decoded value for an error message without quoting
// it: the value came from the network and may be large.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case bool:
		return "a bool"
	case string:
		return "a string"
	case int64, float64:
		return "a number"
	case []byte:
		return "binary"
	case []any:
		return "a list"
	case map[string]any:
		return "a map"
	default:
		return fmt.Sprintf("%T", v)
	}
}
