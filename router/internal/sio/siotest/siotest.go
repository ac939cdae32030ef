// Package siotest is a raw engine.io/socket.io v4 client for tests of the
// server: WebSocket frames and polling requests written by hand, so a test
// controls exactly what goes on the wire (malformed packets, half-sent
// bodies, clients that stop reading), which no real client library allows.
// Every helper fails the test with a readable message and never waits
// without a deadline.
package siotest

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// DialWS opens a raw engine.io WebSocket (no sid: a handshake).
func DialWS(host, origin, sid string, dialer *websocket.Dialer) (*websocket.Conn, *http.Response, error) {
	if dialer == nil {
		dialer = &websocket.Dialer{HandshakeTimeout: 3 * time.Second}
	}
	u := "ws://" + host + "/socket.io/?EIO=4&transport=websocket"
	if sid != "" {
		u += "&sid=" + url.QueryEscape(sid)
	}
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	return dialer.Dial(u, h)
}

// SettleWS completes the engine.io exchange on a fresh WebSocket before the
// test closes it: the open packet and CONNECT for a handshake, the probe for
// an upgrade. Closing earlier hits a data race inside v3.0.6 (not in this
// package): when the peer goes away before the engine grants read permission,
// Handshake fails and abortUpgrade writes a close frame on the gorilla
// connection while the transport's write queue is still writing the open
// packet (two concurrent writers; -race reports it, gorilla may panic, which
// the library's queue recovers).
func SettleWS(t *testing.T, c *websocket.Conn, upgrade bool) {
	t.Helper()
	if upgrade {
		if err := c.WriteMessage(websocket.TextMessage, []byte("2probe")); err != nil {
			t.Fatal(err)
		}
		if m, err := Read(c, 3*time.Second); err != nil || m != "3probe" {
			t.Fatalf("probe answer = %q, %v", m, err)
		}
		return
	}
	if m, err := Read(c, 3*time.Second); err != nil || !strings.HasPrefix(m, "0{") {
		t.Fatalf("open packet = %q, %v", m, err)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		t.Fatal(err)
	}
	if m, err := Read(c, 3*time.Second); err != nil || !strings.HasPrefix(m, "40{") {
		t.Fatalf("CONNECT answer = %q, %v", m, err)
	}
}

// Read returns the next message on c, waiting at most within.
func Read(c *websocket.Conn, within time.Duration) (string, error) {
	_ = c.SetReadDeadline(time.Now().Add(within))
	_, b, err := c.ReadMessage()
	return string(b), err
}

// WSConnect performs the engine.io open and the socket.io CONNECT on a raw
// WebSocket and returns it ready for EVENT frames.
func WSConnect(t *testing.T, host, name string) *websocket.Conn {
	t.Helper()
	dialer := &websocket.Dialer{HandshakeTimeout: 3 * time.Second, EnableCompression: true}
	u := "ws://" + host + "/socket.io/?EIO=4&transport=websocket"
	if name != "" {
		u += "&name=" + url.QueryEscape(name)
	}
	c, _, err := dialer.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if m, err := Read(c, 3*time.Second); err != nil || !strings.HasPrefix(m, "0{") {
		t.Fatalf("open packet = %q, %v", m, err)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		t.Fatalf("write CONNECT: %v", err)
	}
	if m, err := Read(c, 3*time.Second); err != nil || !strings.HasPrefix(m, "40{") {
		t.Fatalf("CONNECT answer = %q, %v", m, err)
	}
	return c
}

// ExpectClosed reads until the server closes c; a read timeout fails.
func ExpectClosed(t *testing.T, c *websocket.Conn, within time.Duration, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(within))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("%s: server did not close the connection within %v", what, within)
			}
			return
		}
	}
}

// PollHandshake opens a polling session and returns the sid.
func PollHandshake(t *testing.T, base, origin, name string) (sid string) {
	t.Helper()
	resp, body := PollGet(t, base, origin, name)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "0{") {
		t.Fatalf("polling handshake: %d %q", resp.StatusCode, body)
	}
	var open struct {
		Sid string `json:"sid"`
	}
	if err := json.Unmarshal([]byte(body[1:]), &open); err != nil || open.Sid == "" {
		t.Fatalf("open packet %q: %v", body, err)
	}
	return open.Sid
}

// PollGet sends a polling GET without a session (a handshake), with the
// query parameter name (if not empty) and Origin header (if not empty).
func PollGet(t *testing.T, base, origin, name string) (*http.Response, string) {
	t.Helper()
	u := base + "/socket.io/?EIO=4&transport=polling"
	if name != "" {
		u += "&name=" + url.QueryEscape(name)
	}
	return get(t, u, origin)
}

// PollGetSid sends a polling GET (a long poll) for session sid and returns
// the status, the Access-Control-Allow-Origin header and the body.
func PollGetSid(t *testing.T, base, sid, origin string) (code int, acao, body string) {
	t.Helper()
	resp, body := get(t, base+"/socket.io/?EIO=4&transport=polling&sid="+url.QueryEscape(sid), origin)
	return resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), body
}

func get(t *testing.T, u, origin string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("polling GET: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// PollPost sends body as a polling POST of session sid, chunked (unknown
// length, as the library's Go client sends) or with a Content-Length.
func PollPost(t *testing.T, base, sid, body string, chunked bool) (int, string) {
	t.Helper()
	return PollPostOrigin(t, base, sid, "", body, chunked)
}

// PollPostOrigin is PollPost with an Origin header.
func PollPostOrigin(t *testing.T, base, sid, origin, body string, chunked bool) (int, string) {
	t.Helper()
	u := base + "/socket.io/?EIO=4&transport=polling&sid=" + url.QueryEscape(sid)
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if chunked {
		req.Body = io.NopCloser(strings.NewReader(body)) // unknown length
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("polling POST: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// MaskedFrame is one WebSocket frame as a client writes it (always
// masked, RFC 6455 5.3), for tests that put bytes on the wire themselves:
// frames split anywhere, fragmented messages, control frames between
// fragments. op is the opcode (1 text, 2 binary, 0 continuation, 8 close,
// 9 ping); fin marks a message's last frame.
func MaskedFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	mask := [4]byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i&3])
	}
	return b
}
