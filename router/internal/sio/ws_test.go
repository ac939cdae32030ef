package sio

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"

	"github.com/rtcio/rtcio-router/router/internal/sio/siotest"
)

// The router's WebSocket transport writes frames itself; gorilla's client
// (a strict RFC 6455 reader) must read every length form back, in order.
func TestWSTransportFrameLengths(t *testing.T) {
	ts := tpStart(t, Config{MaxPayload: 256 << 10})
	c := siotest.WSConnect(t, ts.host, "")
	// 7-bit, 16-bit (126) and 64-bit (127) payload lengths and their edges,
	// counting the socket.io framing around the echoed string.
	for _, n := range []int{0, 100, 120, 121, 122, 200, 65000, 65529, 65530, 65531, 70000, 200000} {
		tpEcho(t, c, strings.Repeat("a", n))
	}
}

// Client pings get pongs with the same data, written by the transport (not
// by gorilla, which would race with the transport's own writes).
func TestWSTransportPingPong(t *testing.T) {
	ts := tpStart(t, Config{})
	c := siotest.WSConnect(t, ts.host, "")
	got := make(chan string, 1)
	c.SetPongHandler(func(data string) error { got <- data; return nil })
	if err := c.WriteControl(websocket.PingMessage, []byte("are-you-there"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	tpEcho(t, c, "after ping") // reading processes the pong
	select {
	case d := <-got:
		if d != "are-you-there" {
			t.Fatalf("pong data %q", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pong")
	}
	tpEcho(t, c, "still working")
}

// A client's close frame is answered with a close frame of the same code,
// so the client sees a clean close rather than an abnormal one (1006).
func TestWSTransportCloseHandshake(t *testing.T) {
	ts := tpStart(t, Config{})
	c := siotest.WSConnect(t, ts.host, "closer")
	ts.socket(t, "closer")
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")
	if err := c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
			t.Fatalf("close = %v, want the server's 1000 close frame", err)
		}
		break
	}
	if r := ts.waitDisconnect(t, "closer", 5*time.Second); r != "transport close" {
		t.Fatalf("disconnect reason %q", r)
	}
}

func TestAppendFrameHeader(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x81, 0}},
		{125, []byte{0x81, 125}},
		{126, []byte{0x81, 126, 0, 126}},
		{65535, []byte{0x81, 126, 0xFF, 0xFF}},
		{65536, []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	} {
		if got := appendFrameHeader(nil, opText, tc.n); string(got) != string(tc.want) {
			t.Errorf("header(%d) = %x, want %x", tc.n, got, tc.want)
		}
	}
}

// A panic while a message is handled ends that connection, not the server.
func TestWSTransportContainsPanics(t *testing.T) {
	var logs strings.Builder
	tr := &Server{log: slog.New(slog.NewTextHandler(&logs, nil))}
	// A transport that was never constructed has no parser: handing it a
	// message the library must decode panics inside the library.
	w := &wsTransport{Transport: transports.MakeTransport(), events: tr}
	if _, ok := w.deliverSafely(websocket.BinaryMessage, []byte{1, 2, 3}); ok {
		t.Fatal("no panic reported")
	}
	if !strings.Contains(logs.String(), "panic while reading a WebSocket message") {
		t.Fatalf("panic not logged: %s", logs.String())
	}
}

// dropWriteBuffer finds gorilla's write buffer fields (a gorilla upgrade
// that renames them fails here), and a connection without the buffer still
// writes a message through gorilla, from the pool, as one made with
// Upgrader.WriteBufferPool does.
func TestWSDropWriteBuffer(t *testing.T) {
	dropped := make(chan bool, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024} // as v3.0.6's
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		dropped <- dropWriteBuffer(c)
		dropped <- dropWriteBuffer(c)
		_ = c.WriteMessage(websocket.TextMessage, []byte("still writes"))
		_, _, _ = c.ReadMessage() // until the client closes
	}))
	defer srv.Close()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !<-dropped {
		t.Fatal("gorilla's writeBuf/writePool fields not found: the write buffer is kept")
	}
	if <-dropped {
		t.Error("a second call changed a connection that has a pool already")
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, m, err := c.ReadMessage(); err != nil || string(m) != "still writes" {
		t.Fatalf("message = %q, %v", m, err)
	}
}
