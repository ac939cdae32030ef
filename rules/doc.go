// Package rules is the rtcio.yaml file format and its compiler. It turns
// YAML plus expressions into an immutable *Set and knows nothing of
// sockets: the router package runs a Set, and `rtcio-router check` only
// loads one. Load (or Parse) is the only way to get a Set, so the server,
// the check command and reload agree on what is valid.
//
// Every problem is reported at once, sorted, as FILE:LINE:COL: message,
// with a did-you-mean hint for misspelt keys, names and stores.
// Expressions (expr-lang/expr) are compiled once at load against a typed
// environment, so a misspelt name is a load error, not a surprise at run
// time.
//
// # Schema
//
//	version: 1                      optional; the only version
//	server:                         settings fixed at start-up
//	  listen: ":3001"               host:port (PORT env and --addr override)
//	  path: /socket.io/
//	  cors_origins: ["*"]           "*" or a list of origins
//	  max_payload: 64KiB            bytes per message (65536, 64KiB, 1MiB)
//	  ping_interval: 25s
//	  ping_timeout: 20s
//	  max_outgoing: 4096            packets queued to one client before it is dropped
//	  max_pending: 1024             events queued from one client before it is dropped
//	relay:
//	  shared_room_only: true        #rtcio:message only between sockets sharing a room
//	stores:                         named key/value maps
//	  NAME: { scope: socket }       socket | room | global
//	rules:                          handled in file order
//	  - event: NAME                 a client event, or the hooks connect / disconnecting
//	    name: NAME                  optional; defaults to the event
//	    validate:                   all must be true, else the rule stops
//	      - EXPR                    false: drop silently
//	      - check: EXPR
//	        reject:                 false: answer the sender only
//	          emit: EVENT
//	          payload: TEMPLATE
//	          ack: TEMPLATE
//	    do:                         actions, in order; each may have `if: EXPR`
//	      - set_data: { KEY: TEMPLATE, ... }      sender's socket data
//	      - let: { NAME: TEMPLATE, ... }          bind names for later actions
//	      - join: EXPR                            room name
//	        as: NAME                              members before the join
//	      - leave: EXPR
//	        as: NAME                              members that remain
//	      - emit: EVENT
//	        to: sender | room | room_all | socket | sender_rooms
//	        room: EXPR                            for room and room_all
//	        socket: EXPR                          for socket (an id)
//	        payload: TEMPLATE                     default: the event's arguments
//	      - ack: TEMPLATE                         answer the client's callback
//	      - set: STORE                            store[key] = value
//	        key: EXPR                             default: the sender's id (socket scope)
//	        field: EXPR                           store[key][field] = value
//	        value: TEMPLATE                       nil deletes
//	      - delete: STORE
//	        key: EXPR
//	        field: EXPR
//	      - for_each: EXPR                        a list (or a map's sorted keys)
//	        as: NAME
//	        where: EXPR                           skip items for which it is false
//	        do: [ACTIONS]
//	      - disconnect: true                      close the sender's connection
//
// A TEMPLATE is YAML that builds a value: a mapping builds an object, a
// sequence an array, a quoted scalar is a literal string, and any other
// scalar is an expression. Object fields whose value is nil are left out,
// as JavaScript leaves out undefined.
//
// # Expressions
//
// See Env for the names (data, args, event, socket, stores, env) and
// Functions for the helpers. Names bound by `as` and `let` are used bare.
// An expression that fails at run time (a missing field, a wrong type)
// stops its rule and is logged at debug level; it never crashes the
// server.
package rules
