// Package router is the running server: the rtc.io runtime that runs a
// compiled rules.Set on the socket.io server of router/internal/sio (as its
// Handler) and keeps the state rules act on.
//
// What lives here and nowhere else:
//   - the hard-wired rtc.io protocol: the #rtcio:message relay (source
//     stamped, shared-room check) and #rtcio:peer-left on disconnect;
//   - the dispatcher, which applies the rules for each event under one
//     snapshot of the rule set, in the socket's own order;
//   - the state: rooms in join order, socket data and stores. One lock makes
//     each event atomic, as Node's single thread does for the reference
//     server; parsing, JSON encoding of incoming frames and network writes
//     stay outside it;
//   - rate limits and the relay's byte budget per socket, and auth on the
//     handshake;
//   - reload: a new Set is swapped in whole, and state outlives it;
//   - connection state recovery (server.recovery): a socket whose transport
//     drops is suspended with its state instead of cleaned up, and its
//     client's recovered socket is attached to it (recovery.go); in a
//     cluster the session and the events sent to it are kept in Redis, so
//     it survives its node and recovers on any other
//     (recovery_cluster.go).
//
// Files: dispatch.go takes events and disconnects to the rules,
// actions.go runs a rule's actions, state.go holds rooms, data and stores,
// relay.go is the #rtcio:message relay, reload.go swaps rule sets,
// recovery.go suspends and reattaches sessions (recovery_cluster.go in a
// cluster, over Redis), cluster.go and registry_redis.go run the node in a
// cluster, limits.go and auth.go gate
// events and handshakes, health.go answers /health, local.go runs rules
// without a network for config tests, registry.go states what any state
// implementation must guarantee. The hardened socket.io layer beneath is
// router/internal/sio, which knows nothing of rtc.io.
//
// No application event name (join-room and the like) appears in this
// package: those come from rtcio.yaml.
package router
