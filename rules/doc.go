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
//	  max_rooms_per_socket: 100     a join past it is refused (applies live)
//	  max_room_name: 256            bytes; a longer name is refused (applies live)
//	  recovery: 2m                  keep a dropped socket's state this long (default off)
//	relay:
//	  shared_room_only: true        #rtcio:message only between sockets sharing a room
//	auth:                           who may connect; refusals are connect_error
//	  jwt:
//	    token: socket.auth.token    where the token is (the default)
//	    secret_env: JWT_SECRET      HS256/384/512 secret, or
//	    public_key_file: key.pem    RSA, ECDSA or Ed25519 public key (PEM)
//	    issuer: ISS                 optional required iss; audience: AUD likewise
//	    leeway: 30s                 clock skew allowed
//	    require_exp: false          admit tokens without exp (default: refused)
//	    max_age: 24h                refuse tokens issued longer ago (needs iat)
//	  require:                      conditions on socket.auth/query/claims
//	    - check: EXPR
//	      message: TEXT             the client's err.message
//	      data: TEMPLATE            the client's err.data
//	limits:                         per-socket token buckets, checked before the rules
//	  all: { rate: 20/s, burst: 40 }            every event handled by rules
//	  relay: { rate: 1000/s, burst: 2000, bytes: 512KiB/s, bytes_burst: 1MiB }
//	                                            #rtcio:message (the defaults), or off
//	  events:
//	    EVENT: { rate: 1/s, burst: 5, reject: { emit: EVENT, payload: TEMPLATE, ack: TEMPLATE } }
//	  flood: { drops: 1000, within: 10s }       disconnect past this many drops (the default)
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
//	        reject: { emit, payload, ack }        answer a join over the server's bounds
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
// scalar is an expression. Object fields whose expression gives nil are
// left out, as JavaScript leaves out undefined; a YAML null (`null`, `~`)
// writes an explicit JSON null.
//
// # Expressions
//
// See Env for the names (data, args, event, socket, stores, env) and
// Functions for the helpers. Names bound by `as` and `let` are used bare.
// An expression that fails at run time (a missing field, a wrong type)
// stops its rule and is logged at debug level; it never crashes the
// server.
package rules
