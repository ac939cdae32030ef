// Package redisbus carries socket.io broadcasts and the emitter's requests
// between cluster nodes over Redis pub/sub, in @socket.io/redis-adapter 8.x's
// wire format.
//
// Why its own package rather than a socket.io adapter: the router keeps its
// own rooms and delivers to its own sockets; between nodes it only needs a
// pipe that says "emit this event to these rooms, except those". Speaking the
// Node adapter's format on that pipe lets three kinds of peers share one
// Redis: our Go nodes, Node socket.io servers using @socket.io/redis-adapter,
// and Node backends using @socket.io/redis-emitter. The bus knows nothing of
// sockets; room names are opaque strings (a socket id is a room, as in
// socket.io), and what a broadcast or request means for local sockets is the
// handler's business.
//
// # Wire format (@socket.io/redis-adapter 8.3.0, @socket.io/redis-emitter 5.1.0)
//
// With the default prefix "socket.io" and namespace "/":
//
//   - Broadcasts go to "socket.io#/#", or to "socket.io#/#ROOM#" when they
//     target exactly one room (Node nodes drop those for rooms they do not
//     hold). Every node pattern-subscribes to "socket.io#/#*". A broadcast is
//     msgpack [uid, packet, opts] with packet {type: 2, data: [event,
//     ...args], nsp: "/"} and opts {rooms: [...], except: [...], flags:
//     {volatile?: true}}.
//   - Requests go to "socket.io-request#/#" as JSON (msgpack for a broadcast
//     with acknowledgements): {uid?, type, opts: {rooms, except}, rooms,
//     close, data, requestId?}. The emitter sends socketsJoin (type 2),
//     socketsLeave (3), disconnectSockets (4) and serverSideEmit (6).
//   - Replies go to "socket.io-response#/#".
//   - The number of nodes is PUBSUB NUMSUB of the request channel: every
//     started Bus is subscribed to it, as every Node adapter is.
//
// # Values
//
// Arguments are JSON-like both ways. Publish accepts nil, bool, string, every
// Go integer and float type, []byte, []any, []string, map[string]any,
// json.Number and anything that implements json.Marshaler (its JSON is
// decoded first, so raw JSON text travels as structured msgpack); any other
// value goes through encoding/json. As notepack.io does for JavaScript
// numbers, an integral float64 within ±2^53 is encoded as a msgpack integer.
//
// Received values are nil, bool, string, int64 (every msgpack integer, which
// is what notepack sends for an integral JavaScript number; a uint64 above
// MaxInt64 becomes float64), float64 (NaN and ±Inf included: the router's
// JSON writer turns them into null), []any, map[string]any, and []byte for
// msgpack bin (a Node Buffer). The router refuses binary arguments, so a
// handler must drop or reject a broadcast holding []byte. A msgpack timestamp
// (a JavaScript Date) becomes the string Date.toJSON would give, because that
// is what a Node server sends its clients. Map keys must be strings.
//
// # Failure
//
// A message that does not decode, or decodes to the wrong shape, is logged at
// debug level and dropped; bad input never panics and never stops the
// subscriber. When the connection to Redis drops, the subscriber reconnects
// and resubscribes with backoff (messages published meanwhile are lost, as
// with any Redis pub/sub). Broadcasts published by this Bus come back on the
// pattern subscription and are ignored by UID, as the Node adapter does.
//
// # What the bus does not do
//
// It sends no requests of its own. A Node server's fetchSockets and
// allRooms (and older adapters' sockets request) are answered with what
// Options.OnFetch returns; without OnFetch they get no reply and time out
// (requestsTimeout, 5 s by default), since the Node adapter counts every
// started Bus (NUMSUB). serverSideEmitWithAck is never answered and times
// out the same way. A Node server's broadcast with acknowledgements is
// delivered to the handler without the ack, and the bus replies that it
// expects zero acks, so the sender completes with the acks of Node clients
// only instead of timing out.
package redisbus
