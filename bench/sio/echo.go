package sio

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/gorilla/websocket"
)

// Echo is the trivial socket.io server: it answers the handshake, forwards
// a #rtcio:message frame verbatim to its target, forwards media-state
// verbatim to the room, and answers join-room with the presence and
// init-offer events the seed sends. It does the least work a server of this
// protocol can do, so what the load generator achieves against it is the
// generator's ceiling, not a server's.
type Echo struct {
	up    websocket.Upgrader
	seq   atomic.Uint64
	mu    sync.RWMutex
	socks map[string]*Conn
	rooms map[string][]*Conn
}

// NewEcho returns an empty echo server; serve it at /socket.io/.
func NewEcho() *Echo {
	return &Echo{
		up:    websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }},
		socks: map[string]*Conn{},
		rooms: map[string][]*Conn{},
	}
}

var (
	relayPrefix = Prefix("#rtcio:message")
	joinPrefix  = Prefix("join-room")
	mediaPrefix = Prefix("media-state")
	targetKey   = []byte(`"target":"`)
	roomKey     = []byte(`"roomId":"`)
)

// ServeHTTP upgrades a WebSocket handshake and serves that socket until it
// closes.
func (e *Echo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := e.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &Conn{ws: ws, buf: make([]byte, 0, 1024), ID: "e" + strconv.FormatUint(e.seq.Add(1), 10)}
	defer func() { _ = ws.Close() }()
	if c.Write([]byte(`0{"sid":"`+c.ID+`","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`)) != nil {
		return
	}
	if f, err := c.next(); err != nil || !bytes.HasPrefix(f, []byte("40")) {
		return
	}
	e.mu.Lock()
	e.socks[c.ID] = c
	e.mu.Unlock()
	if c.Write([]byte(`40{"sid":"`+c.ID+`"}`)) != nil {
		e.drop(c, nil)
		return
	}
	var joined []string
	_ = c.Serve(func(f []byte) {
		switch {
		case bytes.HasPrefix(f, relayPrefix):
			if t := e.lookup(quoted(f, targetKey)); t != nil {
				_ = t.Write(f)
			}
		case bytes.HasPrefix(f, mediaPrefix):
			e.mu.RLock()
			members := e.rooms[string(quoted(f, roomKey))]
			e.mu.RUnlock()
			for _, m := range members {
				if m != c {
					_ = m.Write(f)
				}
			}
		case bytes.HasPrefix(f, joinPrefix):
			if room := e.join(c, Payload(f)); room != "" {
				joined = append(joined, room)
			}
		}
	})
	e.drop(c, joined)
}

func (e *Echo) lookup(id []byte) *Conn {
	e.mu.RLock()
	c := e.socks[string(id)]
	e.mu.RUnlock()
	return c
}

// join adds c to the room and sends the seed's presence events.
func (e *Echo) join(c *Conn, payload []byte) string {
	var p struct {
		RoomID string `json:"roomId"`
		Name   string `json:"name"`
	}
	if json.Unmarshal(payload, &p) != nil || p.RoomID == "" {
		return ""
	}
	e.mu.Lock()
	existing := e.rooms[p.RoomID]
	e.rooms[p.RoomID] = append(existing[:len(existing):len(existing)], c)
	e.mu.Unlock()
	name, _ := json.Marshal(p.Name)
	for _, m := range existing {
		_ = c.Write(Event("user-connected", []byte(`{"id":"`+m.ID+`"}`)))
		_ = m.Write(Event("user-connected", []byte(`{"id":"`+c.ID+`","name":`+string(name)+`}`)))
		_ = m.Write(Event("#rtcio:init-offer", []byte(`{"source":"`+c.ID+`"}`)))
	}
	return p.RoomID
}

func (e *Echo) drop(c *Conn, rooms []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.socks, c.ID)
	for _, r := range rooms {
		var keep []*Conn
		for _, m := range e.rooms[r] {
			if m != c {
				keep = append(keep, m)
			}
		}
		if len(keep) == 0 {
			delete(e.rooms, r)
		} else {
			e.rooms[r] = keep
		}
	}
}

// quoted returns the string value that follows key ("k":") in f, without
// unescaping: ids and room names of the benchmark hold no escapes.
func quoted(f, key []byte) []byte {
	i := bytes.Index(f, key)
	if i < 0 {
		return nil
	}
	v := f[i+len(key):]
	j := bytes.IndexByte(v, '"')
	if j < 0 {
		return nil
	}
	return v[:j]
}
