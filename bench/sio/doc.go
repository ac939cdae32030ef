// Package sio is the load generator's side of the wire: a minimal socket.io
// v4 client over a raw WebSocket (engine.io protocol 4, no polling, no
// reconnection, no JSON decoding on the hot path) and the trivial echo
// server that proves the generator is not the bottleneck.
//
// It exists because a full socket.io client spends more CPU per message than
// the servers it would measure; this one reads into a reused buffer, matches
// event names by prefix and writes prebuilt frames, so nearly all of the
// generator's core is left for driving load.
package sio
