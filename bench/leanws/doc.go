// Command leanws is an experiment for issue 14, not part of the server: how
// little memory an idle socket.io WebSocket session can cost in Go when it
// is served without the per-connection objects that rtcio-router holds
// today (zishang520's engine.io socket, transport and socket.io client and
// socket, the retained handshake context and request, gorilla's Conn and
// its buffers, a reader goroutine and a heartbeat goroutine per socket).
//
// A session here is a small struct, the net.Conn, an entry in one epoll
// set and a slot in one heartbeat wheel. Nothing waits per connection:
//
//   - Reads: the connection's descriptor is also registered, level
//     triggered, in an epoll instance of our own whose single goroutine
//     reads every readable socket with non-blocking read(2) calls (through
//     syscall.RawConn, so Go's own poller and deadlines stay as they are)
//     into a pooled buffer. A frame that arrives in pieces keeps only its
//     bytes so far.
//   - Writes: one non-blocking write(2) from the sender, as the router's
//     transport does (router/internal/sio/ws.go); a full socket buffer
//     would hand the rest to a goroutine there (not needed for idle
//     sockets, so here the connection is dropped).
//   - Heartbeat: one goroutine and a wheel of one-second slots: each
//     session is in the slot of its next ping, or of its pong deadline.
//   - The handshake runs on the accepting connection's goroutine with a
//     pooled bufio.Reader and http.ReadRequest, which then exits; what
//     the application needs from the handshake (here the query string) is
//     copied out and the request dropped.
//
// It speaks engine.io 4 over WebSocket only (no polling, no upgrade) and
// socket.io 4's main namespace: open, CONNECT and its reply, ping/pong with
// a timeout, events counted and dropped, DISCONNECT, close. That is enough
// for bench/memidle, which runs it like the router binary:
//
//	go build -o /tmp/leanws ./bench/leanws
//	go run ./bench/memidle -router /tmp/leanws
//
// It reads the rules file only for metrics.listen (where the profiles are
// served), and takes -c, --addr and --log-level like rtcio-router.
package main
