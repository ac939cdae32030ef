package sio

import (
	"bytes"
	"context"
	"encoding/json"
)

// DialSession opens a connection that asks to recover the session pid
// (Conn.PID of an earlier connection) from the event at offset on: what
// socket.io-client sends when it reconnects to a server with connection
// state recovery. The returned Conn has the old ID when the server
// recovered the session, a new one when it started a new session.
func DialSession(ctx context.Context, base, pid, offset string) (*Conn, error) {
	auth, err := json.Marshal(map[string]string{"pid": pid, "offset": offset})
	if err != nil {
		return nil, err
	}
	return dial(ctx, base, "", append([]byte("40"), auth...))
}

// Offset returns the offset a server with connection state recovery
// appends to an EVENT frame (its last argument, a string, after at least
// one other argument), or "" when the frame has none. Payloads of this
// protocol are objects, so a trailing string is the offset.
func Offset(frame []byte) string {
	if !bytes.HasPrefix(frame, []byte(`42[`)) || !bytes.HasSuffix(frame, []byte(`"]`)) {
		return ""
	}
	body := frame[:len(frame)-2]
	i := bytes.LastIndexByte(body, '"')
	if i < 1 || body[i-1] != ',' || bytes.IndexByte(body[i+1:], '\\') >= 0 {
		return ""
	}
	return string(body[i+1:])
}
