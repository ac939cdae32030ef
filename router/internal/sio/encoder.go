package sio

import (
	"strconv"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// wireEncoder writes outgoing socket.io packets. The library's encoder
// deep-copies every map and list of a packet before marshalling it and
// grows its output from one byte, which profiling showed as the largest
// allocation of a relayed envelope (about 4 KiB per 300-byte message). The
// server never sends binary attachments (clients cannot send them, handlers
// build JSON), so a packet is always one text frame:
// <type>[<nsp>,][<ack id>][<json data>], as socket.io-parser writes it.
type wireEncoder struct{}

var _ parser.Encoder = wireEncoder{}

// Encode returns the packet as one string buffer.
func (wireEncoder) Encode(p *parser.Packet) []types.BufferInterface {
	b := make([]byte, 0, 256)
	b = append(b, byte(p.Type)+'0')
	if p.Nsp != "" && p.Nsp != "/" {
		b = append(b, p.Nsp...)
		b = append(b, ',')
	}
	if p.Id != nil {
		b = strconv.AppendUint(b, *p.Id, 10)
	}
	if p.Data != nil {
		head := len(b)
		var ok bool
		// As the library does: data that cannot be encoded is left out
		// (a Handler should send none).
		if b, ok = appendJSON(b, p.Data); !ok || len(b)-head > types.MaxPayloadSize {
			b = b[:head]
		}
	}
	return []types.BufferInterface{types.NewStringBuffer(b)}
}
