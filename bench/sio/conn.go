package sio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Conn is one socket.io v4 connection to the default namespace over a raw
// WebSocket. Write is safe from any goroutine; Serve must run in one.
type Conn struct {
	ws  *websocket.Conn
	wmu sync.Mutex
	// ID is the socket id the server assigned (the "sid" of the CONNECT
	// reply), which peers use as a relay target.
	ID string
	// PID is the private session id of the CONNECT reply when the server
	// has connection state recovery on ("" otherwise): presented with an
	// offset, it recovers the session (DialSession).
	PID string
	buf []byte
}

var dialer = websocket.Dialer{HandshakeTimeout: 15 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096}

// Dial opens a WebSocket to base (http://host:port), completes the engine.io
// open and the socket.io CONNECT, and returns the connection with its id.
func Dial(ctx context.Context, base string) (*Conn, error) { return DialFrom(ctx, base, "") }

// DialFrom is Dial from the local IP address from ("": the kernel's
// choice). One source address has one ephemeral port range (about 28k
// ports on Linux's default), so connecting more sockets than that to one
// server takes several: 127.0.0.2, 127.0.0.3, ... all reach a server on
// 127.0.0.1 over loopback.
func DialFrom(ctx context.Context, base, from string) (*Conn, error) {
	return dial(ctx, base, from, []byte("40"))
}

// dial opens the connection from the local address from ("": any) and
// sends connect as the socket.io CONNECT.
func dial(ctx context.Context, base, from string, connect []byte) (*Conn, error) {
	u := strings.Replace(base, "http://", "ws://", 1) + "/socket.io/?EIO=4&transport=websocket"
	d := &dialer
	if from != "" {
		ip := net.ParseIP(from)
		if ip == nil {
			return nil, fmt.Errorf("sio: bad source address %q", from)
		}
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Control: bindNoPort}
		dd := dialer
		dd.NetDialContext = nd.DialContext
		d = &dd
	}
	ws, resp, err := d.DialContext(ctx, u, http.Header{})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	c := &Conn{ws: ws, buf: make([]byte, 0, 1024)}
	if err := c.handshake(ctx, connect); err != nil {
		_ = ws.Close()
		return nil, err
	}
	return c, nil
}

func (c *Conn) handshake(ctx context.Context, connect []byte) error {
	deadline := time.Now().Add(15 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.ws.SetReadDeadline(deadline)
	defer func() { _ = c.ws.SetReadDeadline(time.Time{}) }()
	open, err := c.next()
	if err != nil {
		return fmt.Errorf("engine.io open: %w", err)
	}
	if len(open) == 0 || open[0] != '0' {
		return fmt.Errorf("engine.io open: got %q", open)
	}
	if err := c.Write(connect); err != nil {
		return err
	}
	msg, err := c.next()
	if err != nil {
		return fmt.Errorf("socket.io connect: %w", err)
	}
	var hello struct {
		Sid string `json:"sid"`
		Pid string `json:"pid"`
	}
	if !bytes.HasPrefix(msg, []byte("40")) || json.Unmarshal(msg[2:], &hello) != nil || hello.Sid == "" {
		return fmt.Errorf("socket.io connect: got %q", msg)
	}
	c.ID, c.PID = hello.Sid, hello.Pid
	return nil
}

// next reads one socket.io frame into the connection's buffer, answering
// engine.io pings on the way. The result is valid until the next call.
func (c *Conn) next() ([]byte, error) {
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			return nil, err
		}
		b := c.buf[:0]
		for {
			if len(b) == cap(b) {
				b = append(b, 0)[:len(b)]
			}
			n, err := r.Read(b[len(b):cap(b)])
			b = b[:len(b)+n]
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
		}
		c.buf = b
		if len(b) == 1 && b[0] == '2' { // engine.io ping
			if err := c.Write([]byte("3")); err != nil {
				return nil, err
			}
			continue
		}
		return b, nil
	}
}

// Serve reads frames until the connection fails or is closed, handing each
// socket.io frame to h. The slice h receives is reused after h returns.
// It returns nil once Close was called.
func (c *Conn) Serve(h func(frame []byte)) error {
	for {
		f, err := c.next()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				return nil
			}
			return err
		}
		h(f)
	}
}

// Write sends one text frame.
func (c *Conn) Write(frame []byte) error {
	c.wmu.Lock()
	err := c.ws.WriteMessage(websocket.TextMessage, frame)
	c.wmu.Unlock()
	return err
}

// Close drops the TCP connection without a close handshake: at 20k sockets
// a handshake per socket would dominate teardown.
func (c *Conn) Close() error { return c.ws.NetConn().Close() }
