package redisbus

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// EmitterUID is the UID @socket.io/redis-emitter puts on its broadcasts and
// serverSideEmit requests (its socketsJoin, socketsLeave and
// disconnectSockets requests carry none), so a handler can tell a backend's
// messages from a node's.
const EmitterUID = "emitter"

// ErrClosed is returned by Publish and Start once Close has been called:
// a closed bus would silently stop carrying messages.
var ErrClosed = errors.New("redisbus: closed")

// Options configures a Bus. The zero value is usable: the defaults are those
// of the Node adapter and emitter, so that they share channels with no
// configuration.
type Options struct {
	// Prefix starts every channel name, as the Node adapter's `key` option
	// does; default "socket.io".
	Prefix string
	// Namespace is the socket.io namespace whose broadcasts the bus carries;
	// default "/". Messages for other namespaces are ignored.
	Namespace string
	// UID names this bus on the wire, so it can skip its own broadcasts when
	// they come back; default a random 8-character string. It must differ
	// from every other node's and from EmitterUID.
	UID string
	// Logger receives the bus's logs (dropped messages at debug level, lost
	// and restored subscriptions at warn and info); default slog.Default().
	Logger *slog.Logger
	// OnBroadcast is called for every broadcast another node or an emitter
	// publishes in this namespace, one at a time, from the subscriber
	// goroutine: a slow handler delays every later message. It must not call
	// Close, which waits for it. Nil drops them.
	OnBroadcast func(Broadcast)
	// OnRequest is called for the emitter's and other nodes' requests that
	// act on sockets (join, leave, disconnect) or on the servers
	// (serverSideEmit), from the same goroutine as OnBroadcast and in order
	// with it. Nil drops them.
	OnRequest func(Request)
	// OnFetch answers a Node server's fetchSockets and allRooms (and
	// older adapters' sockets request): it returns this node's sockets
	// that are in one of rooms (every socket when rooms is empty) and in
	// none of except. Called from the subscriber goroutine, in order with
	// the other handlers. Nil leaves those requests unanswered, so they
	// time out on the Node side whenever this bus runs.
	OnFetch func(rooms, except []string) []Socket
	// Direct names one more channel to subscribe to, whose messages are
	// not socket.io's: each payload goes to OnDirect as it came, from the
	// subscriber goroutine, in order with the other handlers. For the
	// application's own node-to-node messages (rtcio-router's deliveries
	// of recovery offsets), which share the subscription, and its
	// reconnects, rather than opening another. Empty: none.
	Direct   string
	OnDirect func(payload string)
}

// Socket describes one of this node's sockets to a Node server, as
// fetchSockets gives it (socket.io's RemoteSocket).
type Socket struct {
	ID string `json:"id"`
	// Rooms are the rooms the socket is in, its own id included, as
	// socket.io lists them.
	Rooms []string `json:"rooms"`
	// Data is socket.data: a JSON-like value, encoded with
	// encoding/json.
	Data any `json:"data"`
	// Handshake is socket.handshake, with the fields that are known.
	Handshake map[string]any `json:"handshake"`
}

// Broadcast is one event for the sockets of the namespace, across the
// cluster: the sockets in any of Rooms (all sockets when Rooms is empty)
// except those in any of Except.
type Broadcast struct {
	// Rooms are the rooms whose sockets receive the event; empty means every
	// socket of the namespace. A socket id is a room.
	Rooms []string
	// Except are rooms whose sockets must not receive the event even when
	// they are in Rooms (socket.io's except, typically the sender's id).
	Except []string
	// Event is the event name; socket.io's reserved names (connect,
	// disconnect, ...) are refused by Publish, as the emitter refuses them.
	Event string
	// Args are the event's arguments, JSON-like values (see the package
	// documentation for the types each way).
	Args []any
	// Volatile lets a node drop the event for a socket that is not ready to
	// send, as socket.io's volatile flag does.
	Volatile bool
	// Tag travels as flags.tag, which socket.io's own nodes and the
	// emitter neither set nor read: publishers of one application use it
	// to tell their receivers how to read Rooms (for instance, that they
	// are socket ids and not rooms). Empty for foreign publishers.
	Tag string
	// From is the UID of the node that published a received broadcast
	// (EmitterUID for the emitter); Publish ignores it.
	From string
}

// RequestKind says what a Request asks every node to do.
type RequestKind int

// The kinds of requests the bus delivers: those @socket.io/redis-emitter
// sends, which Node servers' adapters send too.
const (
	// RequestJoin makes the selected sockets join Request.Target
	// (emitter.socketsJoin).
	RequestJoin RequestKind = iota + 1
	// RequestLeave makes the selected sockets leave Request.Target
	// (emitter.socketsLeave).
	RequestLeave
	// RequestDisconnect disconnects the selected sockets
	// (emitter.disconnectSockets); Request.Close asks to close the
	// underlying connection too.
	RequestDisconnect
	// RequestServerSideEmit is an event for the servers themselves, not for
	// sockets (emitter.serverSideEmit).
	RequestServerSideEmit
)

// String names the kind after the emitter method that sends it, for logs.
func (k RequestKind) String() string {
	switch k {
	case RequestJoin:
		return "socketsJoin"
	case RequestLeave:
		return "socketsLeave"
	case RequestDisconnect:
		return "disconnectSockets"
	case RequestServerSideEmit:
		return "serverSideEmit"
	default:
		return "RequestKind(" + strconv.Itoa(int(k)) + ")"
	}
}

// Request is something an emitter or another node asks every node to do to
// its local sockets, or an event for the servers themselves.
type Request struct {
	Kind RequestKind
	// From is the sender's UID when it gave one: a Node adapter always
	// does; the emitter does for serverSideEmit only (EmitterUID).
	From string
	// Rooms and Except select the sockets for RequestJoin, RequestLeave and
	// RequestDisconnect as they do for a Broadcast: every socket when Rooms
	// is empty.
	Rooms  []string
	Except []string
	// Target are the rooms the selected sockets join (RequestJoin) or leave
	// (RequestLeave).
	Target []string
	// Close is RequestDisconnect's close argument: close the underlying
	// connection, not only the namespace.
	Close bool
	// Event and Args are RequestServerSideEmit's event name and arguments.
	Event string
	Args  []any
	// WantsAck is set when a Node server sent the serverSideEmit with an
	// acknowledgement callback. The bus cannot answer it, so that server's
	// callback gets a timeout error for this node.
	WantsAck bool
}

// Bus publishes this node's broadcasts to Redis and delivers the cluster's
// broadcasts and requests to its handlers. Its methods are safe for
// concurrent use.
type Bus struct {
	client redis.UniversalClient
	opts   Options
	log    *slog.Logger
	ch     channels

	closed atomic.Bool

	mu      sync.Mutex // guards the fields below
	started bool
	ps      *redis.PubSub
	cancel  context.CancelFunc
	done    chan struct{} // closed when the subscriber goroutine has returned

	dec *decoder // the subscriber goroutine's only
}

// Backoff between attempts to restore a lost subscription: quick at first
// (a restarting Redis is back in a moment), capped so a long outage costs a
// dial a second.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = time.Second
)

// healthInterval is how long the subscriber waits for a message before it
// pings Redis, so a connection that died silently is noticed and replaced.
const healthInterval = 30 * time.Second

// startTimeout bounds Start when its context has no deadline.
const startTimeout = 10 * time.Second

// New returns a bus that publishes and subscribes through client, which the
// caller keeps owning (Close does not close it). The bus does nothing on the
// network until Start or Publish.
func New(client redis.UniversalClient, opts Options) (*Bus, error) {
	if client == nil {
		return nil, errors.New("redisbus: nil redis client")
	}
	if opts.Prefix == "" {
		opts.Prefix = "socket.io"
	}
	if opts.Namespace == "" {
		opts.Namespace = "/"
	}
	if opts.Namespace[0] != '/' {
		return nil, fmt.Errorf("redisbus: namespace %q does not start with /", opts.Namespace)
	}
	if opts.UID == "" {
		opts.UID = randomUID()
	}
	if opts.UID == EmitterUID {
		return nil, fmt.Errorf("redisbus: uid %q is the emitter's", opts.UID)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Bus{
		client: client,
		opts:   opts,
		log:    opts.Logger.With("uid", opts.UID),
		ch:     newChannels(opts.Prefix, opts.Namespace),
		dec:    newDecoder(),
	}, nil
}

// randomUID returns 8 characters from [0-9A-Za-z], like the Node adapter's
// uid2(6) but a little longer, as nodes come and go.
func randomUID() string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand since Go 1.24)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// UID returns the name this bus publishes under.
func (b *Bus) UID() string { return b.opts.UID }

// Start subscribes to the namespace's broadcast and request channels and
// returns once Redis has confirmed both, so that from then on the bus
// receives every message and counts in ServerCount. It then keeps receiving
// on a goroutine of its own, resubscribing after connection losses, until
// Close. The handlers must be set in Options: they cannot change once the
// bus runs.
func (b *Bus) Start(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return ErrClosed
	}
	if b.started {
		return errors.New("redisbus: already started")
	}
	ps := b.client.Subscribe(ctx)
	if err := ps.PSubscribe(ctx, b.ch.pattern); err != nil {
		_ = ps.Close()
		return fmt.Errorf("redisbus: psubscribe %s: %w", b.ch.pattern, err)
	}
	if err := ps.Subscribe(ctx, b.ch.request); err != nil {
		_ = ps.Close()
		return fmt.Errorf("redisbus: subscribe %s: %w", b.ch.request, err)
	}
	if b.opts.Direct != "" {
		if err := ps.Subscribe(ctx, b.opts.Direct); err != nil {
			_ = ps.Close()
			return fmt.Errorf("redisbus: subscribe %s: %w", b.opts.Direct, err)
		}
	}
	// The subscriber goroutine reads the confirmations too, so that every
	// message, even one arriving between them, reaches the handlers from
	// that one goroutine.
	runCtx, cancel := context.WithCancel(context.Background())
	done, subscribed := make(chan struct{}), make(chan struct{})
	go b.run(runCtx, ps, done, subscribed)

	timeout := startTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var err error
	select {
	case <-subscribed:
		b.started, b.ps, b.cancel, b.done = true, ps, cancel, done
		return nil
	case <-ctx.Done():
		err = fmt.Errorf("redisbus: subscribe: %w", ctx.Err())
	case <-timer.C:
		err = fmt.Errorf("redisbus: subscribe: not confirmed by redis within %v", timeout)
	}
	cancel()
	_ = ps.Close()
	<-done
	return err
}

// run receives until Close, and closes subscribed once Redis has confirmed
// both subscriptions. Errors other than Close's are connection losses:
// go-redis reconnects and resubscribes on the next receive, and the loop
// only paces the attempts and logs the outage once.
func (b *Bus) run(ctx context.Context, ps *redis.PubSub, done, subscribed chan struct{}) {
	defer close(done)
	confirmed, want := 0, 2
	if b.opts.Direct != "" {
		want = 3
	}
	backoff := minBackoff
	var lostAt time.Time
	for {
		msg, err := ps.ReceiveTimeout(ctx, healthInterval)
		if ctx.Err() != nil || errors.Is(err, redis.ErrClosed) {
			return
		}
		if err != nil {
			if isTimeout(err) {
				// Quiet channel: a ping either answers or breaks the
				// connection, which the next receive then replaces.
				_ = ps.Ping(ctx)
				continue
			}
			if lostAt.IsZero() {
				lostAt = time.Now()
				b.log.Warn("redis subscription lost; reconnecting", "err", err)
			} else {
				b.log.Debug("redis resubscribe failed", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if confirmed < want && (m.Kind == "psubscribe" || m.Kind == "subscribe") {
				if confirmed++; confirmed == want {
					close(subscribed)
				}
			}
			if !lostAt.IsZero() && m.Kind == "subscribe" {
				b.log.Info("redis subscription restored", "outage", time.Since(lostAt).Round(time.Millisecond))
				lostAt, backoff = time.Time{}, minBackoff
			}
		case *redis.Message:
			b.dispatch(m)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// dispatch decodes one message and hands it to its handler. Called from the
// subscriber goroutine only, which owns b.dec.
func (b *Bus) dispatch(m *redis.Message) {
	if m.Channel == b.ch.request {
		b.onRequest(m.Payload)
		return
	}
	if b.opts.Direct != "" && m.Channel == b.opts.Direct {
		if b.opts.OnDirect != nil {
			b.opts.OnDirect(m.Payload)
		}
		return
	}
	br, err := decodeBroadcast(b.dec, m.Payload, b.opts.UID, b.opts.Namespace)
	if err == errOwn {
		return
	}
	if err != nil {
		b.log.Debug("malformed broadcast dropped", "channel", m.Channel, "err", err)
		return
	}
	if b.opts.OnBroadcast != nil {
		b.opts.OnBroadcast(br)
	}
}

func (b *Bus) onRequest(payload string) {
	w, err := decodeRequest(b.dec, payload)
	if err != nil {
		b.log.Debug("malformed request dropped", "err", err)
		return
	}
	req, err := b.request(w)
	if err != nil {
		b.log.Debug("request dropped", "type", w["type"], "err", err)
		return
	}
	if req != nil && b.opts.OnRequest != nil {
		b.opts.OnRequest(*req)
	}
}

// request interprets a decoded request. It returns nil, nil for requests
// that are handled here or deliberately not answered.
func (b *Bus) request(w wireRequest) (*Request, error) {
	from, _ := w["uid"].(string)
	if from == b.opts.UID {
		return nil, nil
	}
	typ, ok := w["type"].(int64)
	if !ok {
		return nil, fmt.Errorf("type: %s, want a number", typeName(w["type"]))
	}
	req := &Request{From: from}
	var err error
	switch typ {
	case reqRemoteJoin, reqRemoteLeave:
		req.Kind = RequestJoin
		if typ == reqRemoteLeave {
			req.Kind = RequestLeave
		}
		if req.Rooms, req.Except, err = w.selection(); err != nil {
			return nil, err
		}
		if req.Target, err = roomList(w["rooms"]); err != nil {
			return nil, fmt.Errorf("rooms: %w", err)
		}
	case reqRemoteDisconnect:
		req.Kind = RequestDisconnect
		if req.Rooms, req.Except, err = w.selection(); err != nil {
			return nil, err
		}
		switch c := w["close"].(type) {
		case nil:
		case bool:
			req.Close = c
		default:
			return nil, fmt.Errorf("close: %s, want a bool", typeName(c))
		}
	case reqServerSideEmit:
		req.Kind = RequestServerSideEmit
		data, ok := w["data"].([]any)
		if !ok || len(data) == 0 {
			return nil, fmt.Errorf("data: %s, want [event, ...args]", typeName(w["data"]))
		}
		if req.Event, ok = data[0].(string); !ok {
			return nil, fmt.Errorf("event name: %s, want a string", typeName(data[0]))
		}
		if len(data) > 1 {
			req.Args = data[1:]
		}
		_, req.WantsAck = w["requestId"]
	case reqBroadcast:
		return nil, b.onBroadcastWithAck(w)
	case reqSockets, reqAllRooms, reqRemoteFetch:
		return nil, b.onFetch(w, typ)
	default:
		return nil, fmt.Errorf("unknown request type %d", typ)
	}
	return req, nil
}

// onBroadcastWithAck delivers a Node server's broadcast-with-ack to the
// handler as a plain broadcast, then tells the sender to expect no acks from
// this node. Without that reply the sender waits for this node until its
// timeout and reports an error even when every client answered.
func (b *Bus) onBroadcastWithAck(w wireRequest) error {
	requestID, ok := w["requestId"].(string)
	if !ok {
		return fmt.Errorf("requestId: %s, want a string", typeName(w["requestId"]))
	}
	br, err := broadcastFrom(w["packet"], w["opts"], b.opts.Namespace)
	if err != nil {
		return err
	}
	br.From, _ = w["uid"].(string)
	if b.opts.OnBroadcast != nil {
		b.opts.OnBroadcast(br)
	}
	// JSON, as the Node adapter sends this reply; requestId is one of its
	// uid2 strings, which need no escaping, but quote it properly anyway.
	reply := `{"type":` + strconv.Itoa(resBroadcastCount) + `,"requestId":` + strconv.Quote(requestID) + `,"clientCount":0}`
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.client.Publish(ctx, b.ch.response, reply).Err(); err != nil {
		return fmt.Errorf("reply to broadcast with ack %s: %w", requestID, err)
	}
	return nil
}

// onFetch answers a Node server's request for this node's sockets
// (fetchSockets), their ids (sockets) or its rooms (allRooms) with
// OnFetch's answer, in JSON as the Node adapter answers them.
func (b *Bus) onFetch(w wireRequest, typ int64) error {
	if b.opts.OnFetch == nil {
		b.log.Debug("request not answered: no OnFetch", "type", typ)
		return nil
	}
	requestID, ok := w["requestId"].(string)
	if !ok {
		return fmt.Errorf("requestId: %s, want a string", typeName(w["requestId"]))
	}
	var rooms, except []string
	var err error
	switch typ {
	case reqRemoteFetch:
		rooms, except, err = w.selection()
	case reqSockets:
		rooms, err = roomList(w["rooms"])
	}
	if err != nil {
		return err
	}
	sockets := b.opts.OnFetch(rooms, except)
	reply := map[string]any{"requestId": requestID}
	switch typ {
	case reqRemoteFetch:
		if sockets == nil {
			sockets = []Socket{}
		}
		reply["sockets"] = sockets
	case reqSockets:
		ids := make([]string, 0, len(sockets))
		for _, s := range sockets {
			ids = append(ids, s.ID)
		}
		reply["sockets"] = ids
	case reqAllRooms:
		all := []string{}
		seen := map[string]bool{}
		for _, s := range sockets {
			for _, r := range s.Rooms {
				if !seen[r] {
					seen[r] = true
					all = append(all, r)
				}
			}
		}
		reply["rooms"] = all
	}
	msg, err := json.Marshal(reply)
	if err != nil && typ == reqRemoteFetch {
		// Some socket's data is not JSON: answer without the data rather
		// than not at all, which would fail the whole fetchSockets.
		b.log.Debug("fetchSockets: socket data dropped from the reply", "err", err)
		for i := range sockets {
			sockets[i].Data = nil
		}
		msg, err = json.Marshal(reply)
	}
	if err != nil {
		return fmt.Errorf("reply to request %s: %w", requestID, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.client.Publish(ctx, b.ch.response, msg).Err(); err != nil {
		return fmt.Errorf("reply to request %s: %w", requestID, err)
	}
	return nil
}

// Publish sends a broadcast to every other node and emitter-aware server in
// the namespace. It returns once Redis has accepted the message; delivery is
// at most once, as with any Redis pub/sub. This bus never receives its own
// broadcast: the caller delivers to its local sockets itself.
func (b *Bus) Publish(ctx context.Context, br Broadcast) error {
	return b.PublishVia(ctx, br, func(ctx context.Context, channel string, payload []byte) error {
		return b.client.Publish(ctx, channel, payload).Err()
	})
}

// PublishVia is Publish with its last step, the PUBLISH of payload on
// channel, left to send: for a caller that publishes from a Lua script
// together with the checks that decide whether to (one round trip where
// there would be several). payload is valid only during send.
func (b *Bus) PublishVia(ctx context.Context, br Broadcast, send func(ctx context.Context, channel string, payload []byte) error) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if br.Event == "" {
		return errors.New("redisbus: publish: empty event name")
	}
	if reservedEvents[br.Event] {
		return fmt.Errorf("redisbus: publish: %q is a reserved event name", br.Event)
	}
	rooms, except := dedup(br.Rooms), dedup(br.Except)
	e := getEncoder()
	defer putEncoder(e)
	if err := encodeBroadcast(e.enc, b.opts.UID, b.opts.Namespace, &br, rooms, except); err != nil {
		return fmt.Errorf("redisbus: publish %q: %w", br.Event, err)
	}
	channel := b.ch.channelFor(rooms)
	if err := send(ctx, channel, e.buf.Bytes()); err != nil {
		return fmt.Errorf("redisbus: publish %q to %s: %w", br.Event, channel, err)
	}
	return nil
}

// dedup returns rooms without repeats, in order: socket.io keeps rooms in a
// Set, and the single-room channel must be chosen on distinct rooms. The
// common case (no repeats) returns rooms itself without allocating.
func dedup(rooms []string) []string {
	if len(rooms) < 2 {
		return rooms
	}
	repeated := false
	for i := 1; i < len(rooms) && !repeated; i++ {
		for _, r := range rooms[:i] {
			if r == rooms[i] {
				repeated = true
				break
			}
		}
	}
	if !repeated {
		return rooms
	}
	seen := make(map[string]bool, len(rooms))
	out := make([]string, 0, len(rooms))
	for _, r := range rooms {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

// ServerCount returns how many nodes serve the namespace: the subscribers of
// its request channel (PUBSUB NUMSUB), which every started Bus and every
// Node adapter is, as the Node adapter counts them. On Redis Cluster it sums
// the masters' counts, as the Node adapter does.
func (b *Bus) ServerCount(ctx context.Context) (int, error) {
	if cc, ok := b.client.(*redis.ClusterClient); ok {
		var total atomic.Int64
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			n, err := numSub(ctx, c, b.ch.request)
			total.Add(n)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("redisbus: server count: %w", err)
		}
		return int(total.Load()), nil
	}
	n, err := numSub(ctx, b.client, b.ch.request)
	if err != nil {
		return 0, fmt.Errorf("redisbus: server count: %w", err)
	}
	return int(n), nil
}

func numSub(ctx context.Context, c redis.Cmdable, channel string) (int64, error) {
	res, err := c.PubSubNumSub(ctx, channel).Result()
	if err != nil {
		return 0, err
	}
	return res[channel], nil
}

// Close stops the subscriber (its handlers are not called after Close
// returns, so a handler must not call it) and makes Publish fail. It does not close the Redis client, which
// the caller owns. Calling it again does nothing.
func (b *Bus) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.started {
		return nil
	}
	b.cancel()
	err := b.ps.Close()
	<-b.done
	if err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("redisbus: close subscription: %w", err)
	}
	return nil
}
