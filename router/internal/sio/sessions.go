package sio

// Connection state recovery with sessions kept outside the process
// (Config.Sessions), so that a client can recover its session on another
// server than the one it lost: a node of a cluster that stopped.
//
// How socket.io v4 recovers, on the wire: the server's CONNECT reply
// carries {sid, pid}; every event that can be replayed carries one more
// argument, last, its offset (a string); the client remembers the last
// offset it saw and, when it reconnects, sends {pid, offset} in its CONNECT
// auth; a server that still has the session answers with the same sid,
// sends what came after that offset and sets socket.recovered.
//
// The library does this for a store in the process only: its
// session-aware adapter appends an offset to each broadcast and keeps the
// packets and sessions in memory. With a SessionStore the adapter is the
// plain one, and the two ends of that protocol are the store's:
//
//   - offsets: whoever sends to a socket gets the event's offset from the
//     store first and sends it with Socket.Deliver; the server appends none
//     of its own. Events sent any other way carry no offset.
//   - the reconnect: the library asks the adapter for the session of
//     {pid, offset} (roomAdapter.RestoreSession); the adapter asks the
//     store, and hands the library the session's id, rooms and missed
//     events, which the library sends before anything else.
//   - the pid: the library makes it at connect; Socket.PrivateID reads it,
//     so the store can keep it with the session.
//
// The Handler's Recover runs afterwards, as for the in-memory store.

import (
	"errors"
	"reflect"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// SessionStore keeps the sessions of connection state recovery and the
// events sent to them (Config.Sessions). Implementations must be safe
// for concurrent use.
type SessionStore interface {
	// Restore returns the session whose private id is pid with the events
	// sent to it after offset, oldest first, or nil when the client must
	// start over (unknown or expired pid, events missing). It is called
	// before the handshake's Admit; it must not hand the session over yet
	// (the Handler's Recover does, once the client is admitted).
	Restore(pid, offset string) (*StoredSession, error)
}

// StoredSession is a session as a SessionStore keeps it.
type StoredSession struct {
	// ID is the socket id the client gets back.
	ID string
	// Rooms are its application rooms.
	Rooms []string
	// Missed are the events sent to it after the client's offset.
	Missed []StoredEvent
}

// StoredEvent is one event kept for a session.
type StoredEvent struct {
	// Offset is what the client reports having seen last.
	Offset string
	// Data is the packet's data as sent, without the offset: the JSON
	// array ["event", args...], as AppendJSON writes it.
	Data []byte
}

// errNoOffset is Deliver's error for an offset a client could not store.
var errNoOffset = errors.New("sio: deliver: empty offset")

// Deliver sends s the event data (a JSON array ["event", args...] as
// AppendJSON writes it, ending in ']') with offset appended as its last
// argument: an event of a session kept in a SessionStore. It writes
// nothing to a socket that is no longer connected (the event is the
// store's to replay).
func (s *Socket) Deliver(data []byte, offset string) error {
	if offset == "" {
		return errNoOffset
	}
	if s.lean != nil { // never: lean sessions are off with recovery
		return errors.New("sio: a lean socket keeps no session")
	}
	if !s.ls.Connected() {
		return nil
	}
	return writeEvent(s.ls, data, offset)
}

// writeEvent writes the EVENT packet data+offset to ls's connection.
func writeEvent(ls *socket.Socket, data []byte, offset string) error {
	raw, err := withOffset(data, offset)
	if err != nil {
		return err
	}
	p := &parser.Packet{Type: parser.EVENT, Nsp: ls.Nsp().Name(), Data: raw}
	ls.Client().WriteToEngine(wireEncoder{}.Encode(p), &socket.WriteOptions{})
	return nil
}

// Abort closes s's engine connection at once, sending nothing: no
// socket.io DISCONNECT, which Close's library call writes to each socket
// of the connection first (v3.0.6 Client._disconnect) and which tells a
// client that wins the race not to reconnect. The client sees a transport
// close and reconnects, recovering its session where a SessionStore keeps
// it; the server reports the socket gone with reason "forced close"
// (recoverable).
func (s *Socket) Abort() {
	if s.lean != nil {
		s.lean.lc.end(reasonForcedClose, false)
		return
	}
	s.ls.Conn().Close(true)
}

// withOffset returns the JSON array data with offset as one more element.
func withOffset(data []byte, offset string) (*RawJSON, error) {
	n := len(data)
	if n < 2 || data[0] != '[' || data[n-1] != ']' {
		return nil, errors.New("sio: stored event is not a JSON array")
	}
	b := make([]byte, 0, n+len(offset)+4)
	b = append(b, data[:n-1]...)
	if n > 2 {
		b = append(b, ',')
	}
	b = appendJSONString(b, offset)
	b = append(b, ']')
	return &RawJSON{raw: b}, nil
}

// PrivateID is the session's private id (socket.io's pid), which the
// client presents to recover it; "" with recovery off. Why reflection:
// v3.0.6 keeps it in an unexported field and offers no accessor, and a
// SessionStore must keep it with the session at connect, before any
// disconnect, for a server that dies without a word to leave it behind.
// TestPrivateIDIsTheCONNECTPid pins it to what the client receives.
func (s *Socket) PrivateID() string {
	if s.lean != nil {
		return ""
	}
	v := reflect.ValueOf(s.ls).Elem().FieldByName("pid")
	if !v.IsValid() || v.Kind() != reflect.String {
		return ""
	}
	return v.String()
}

// ReplayedUpTo is, for a socket recovered from a SessionStore, the offset
// of the last event the server replayed at its CONNECT (the client's own
// offset when there was none): what the Handler's Recover reads the
// store after. "" for any other socket. It is given once: call it in
// Recover.
func (s *Socket) ReplayedUpTo() string {
	if s.lean != nil || !s.ls.Recovered() {
		return ""
	}
	v, _ := s.srv.replayed.LoadAndDelete(s.id)
	last, _ := v.(string)
	return last
}

// restoreFromStore answers the library's RestoreSession from the store.
func (a *roomAdapter) restoreFromStore(pid socket.PrivateSessionId, offset string) (*socket.Session, error) {
	sess, err := a.store.Restore(string(pid), offset)
	if err != nil || sess == nil {
		return nil, err
	}
	rooms := types.NewSet(socket.Room(sess.ID))
	for _, name := range sess.Rooms {
		rooms.Add(libraryRoom(name))
	}
	missed := make([]any, 0, len(sess.Missed))
	last := offset
	for _, ev := range sess.Missed {
		raw, err := withOffset(ev.Data, ev.Offset)
		if err != nil {
			return nil, err
		}
		missed = append(missed, raw)
		last = ev.Offset
	}
	if a.t != nil {
		a.t.replayed.Store(sess.ID, last)
	}
	return &socket.Session{
		SessionToPersist: &socket.SessionToPersist{Sid: socket.SocketId(sess.ID), Pid: pid, Rooms: rooms},
		MissedPackets:    missed,
	}, nil
}
