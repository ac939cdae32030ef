package sio

import (
	"bytes"
	"strconv"
)

// Event builds the socket.io EVENT frame 42["name",payload]; payload must be
// JSON (nil sends the event without arguments).
func Event(name string, payload []byte) []byte {
	b := make([]byte, 0, len(name)+len(payload)+8)
	b = append(b, `42["`...)
	b = append(b, name...)
	b = append(b, '"')
	if payload != nil {
		b = append(b, ',')
		b = append(b, payload...)
	}
	return append(b, ']')
}

// Prefix is what every EVENT frame of the named event starts with, for
// matching frames without decoding them.
func Prefix(name string) []byte { return []byte(`42["` + name + `"`) }

// Payload returns the first argument of an EVENT frame built like Event's,
// or nil when the frame is not an event with an argument.
func Payload(frame []byte) []byte {
	if !bytes.HasPrefix(frame, []byte(`42["`)) || frame[len(frame)-1] != ']' {
		return nil
	}
	i := bytes.IndexByte(frame[4:], '"') // event names of this protocol hold no escapes
	if i < 0 || 4+i+2 >= len(frame) || frame[4+i+1] != ',' {
		return nil
	}
	return frame[4+i+2 : len(frame)-1]
}

// Stamp is a frame with one integer field, "t", that can be rewritten in
// place: the load generator puts its send time there and reads it back on
// delivery, so no frame is decoded on the hot path.
type Stamp struct {
	head, tail []byte
}

// StampKey is the key the stamp is written under; payloads must hold it
// once and nowhere else.
const StampKey = `"t":`

// NewStamp splits frame around its "t" value (a placeholder integer).
func NewStamp(frame []byte) Stamp {
	i := bytes.Index(frame, []byte(StampKey))
	if i < 0 {
		panic("sio: frame has no " + StampKey + " field")
	}
	i += len(StampKey)
	j := i
	for j < len(frame) && frame[j] >= '0' && frame[j] <= '9' {
		j++
	}
	return Stamp{head: frame[:i:i], tail: frame[j:]}
}

// Build returns the frame with t written in, appended to dst[:0].
func (s Stamp) Build(dst []byte, t int64) []byte {
	dst = append(dst[:0], s.head...)
	dst = strconv.AppendInt(dst, t, 10)
	return append(dst, s.tail...)
}

// ReadStamp returns the "t" value of a delivered frame, whatever the server
// did to the key order around it.
func ReadStamp(frame []byte) (int64, bool) {
	i := bytes.Index(frame, []byte(StampKey))
	if i < 0 {
		return 0, false
	}
	var t int64
	n := 0
	for _, c := range frame[i+len(StampKey):] {
		if c < '0' || c > '9' {
			break
		}
		t = t*10 + int64(c-'0')
		n++
	}
	return t, n > 0
}
