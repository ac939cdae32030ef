package router

// Connection state recovery in a cluster (server.recovery with cluster:
// set): a session survives its node. A client whose node stops (SIGTERM,
// SIGKILL, a network loss) reconnects through the load balancer to any
// node and recovers there: same socket id, rooms, socket data and store
// entries, the events it missed replayed in order, socket.recovered true.
// Its peers hear nothing.
//
// Nothing of a session lives only in a node's memory; everything a
// recovery needs is in Redis from the moment the socket connects, so a
// node that dies without a word leaves enough behind:
//
//   - the socket's record, rooms, data and stores are the registry's
//     (registry_redis.go); at connect its private id (socket.io's pid,
//     which the client presents to recover) is written with it, and
//     indexed ({P}:pid:<pid>).
//   - every event sent to a socket is kept in its stream ({P}:inbox:<id>,
//     XADD), and the stream id is the offset sent with the event, which the
//     client reports when it reconnects: the node it reconnects to replays
//     what came after it (XRANGE). The stream is bounded by
//     server.recovery_max_events (MAXLEN) and the window (MINID). Keeping
//     and publishing are one script (inbox.lua): the room's members are
//     read, each member's stream gets the event, and each node that holds
//     members is told once, on its own channel ({P}:deliver:<node>), which
//     of its sockets get the event with which offset. The sending node's
//     own sockets too: a node delivers kept events only from its channel
//     (onDeliver), never when the script returns. Scripts run one at a
//     time and one channel's messages arrive in publish order, so each
//     socket gets its events strictly in the order of their offsets,
//     whether they came from this node or another; delivering local ones
//     on the script's return raced with what other nodes had published
//     before, and a client that got a later offset first recovered with
//     it (replayed what it had, or skipped what it had not). A delivery
//     waits for one round trip and the pub/sub hop, the price of recovery
//     in a cluster. The relay takes the same script, with its checks
//     (target registered, a room shared) in it: one round trip, as
//     without recovery.
//   - ownership: a session is attached to one node (the record's node) or
//     suspended (node "", in {P}:suspended scored by its deadline). A node
//     whose socket loses its transport suspends it (suspend.lua) and keeps
//     nothing of it; a node that stops (SIGTERM) closes its sockets without
//     a DISCONNECT, which suspends them all, and exits: each WebSocket
//     first gets a close frame, and what its client sent before it saw
//     that is still handled (sio.Server.HandOff), and the node leaves the
//     set of nodes (depart.lua) so that no one takes it for dead; a node found dead
//     has its remaining sockets suspended by the node that claims it
//     (suspendnode.lua), with the window counted from then: its clients
//     have usually recovered elsewhere long before.
//   - recovery: the library asks for the session of {pid, offset}
//     (sessionStore.Restore, session.lua: read only, the client may yet be
//     refused by the auth check) and replays what it gets; the router's
//     Recover then hands the session to this node (takeover.lua), from
//     suspended or from any node that still holds it (a network loss the
//     old node has not noticed, or a dead one), and sends the events kept
//     between the two reads. An event published for the socket after the
//     takeover reaches this node; one whose offset is not past what was
//     replayed was replayed already and is not sent again
//     (conn.replayedUpTo): a relay sent while the client was away arrives
//     once. The takeover and its replay run under the node's lock, which
//     the channel's deliveries wait for, and the replay reads the stream
//     to its end in the same script that makes the session this node's:
//     every later event is published here with a greater offset, every
//     earlier one is in the replay, so nothing is sent twice or skipped.
//   - the old node, if alive, is told (takeover.lua publishes on its
//     channel) and closes the old transport at once (letGo); if the word
//     is lost, it finds out when its heartbeat times the transport out.
//     Either way it finds the session is no longer its own and drops its
//     conn without a cleanup (suspend.lua and drop.lua check ownership in
//     the script).
//   - expiry: every node's watcher takes the suspended sessions whose
//     deadline passed (expired.lua; a ZREM in a script, so each is taken by
//     exactly one node) and runs their disconnect cleanup: #rtcio:peer-left
//     to their rooms, the disconnecting rules, their state forgotten.
//   - past the cap: a session that lost events after its client's offset
//     is not recovered; the client starts a new one and the old is cleaned
//     up at once as a normal disconnect (session.lua). So is the session of
//     a client that comes back as a new socket for any other reason (it had
//     received no event, so it had no offset to give): its handshake still
//     names the old session's pid, which nobody can recover any more
//     (endAbandoned).
//
// Events that do not come from the rules or the relay (the admin UI's
// emit, a broadcast of a Node server or the emitter on the same Redis) are
// kept the same way by the node that delivers them, to its own sockets:
// a client must never see an event without an offset, or it would take
// its last string argument for one.
//
// Limits: a broadcast of a Node server or the emitter is not kept for
// sockets suspended at that moment. Redis holds the
// sessions: a Redis restart without persistence loses them (the clients
// then start new sessions).

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rtcio/rtcio-router/router/internal/redisbus"
	"github.com/rtcio/rtcio-router/router/internal/sio"
	"github.com/rtcio/rtcio-router/rules"
)

// offsetUnkept is the offset sent with an event that could not be kept
// (Redis unreachable), delivered to this node's sockets all the same, as
// without recovery. A client must get some offset, or it would take its
// last string argument for one; this one is no stream id, so a client
// that reconnects with it starts a new session (its old one is then
// cleaned up) rather than being replayed from a wrong place.
const offsetUnkept = "unkept"

// expiredBatch bounds the sessions one watcher pass takes for cleanup, so
// that a pass stays short; the rest wait for the next.
const expiredBatch = 256

// shared reports whether sessions are kept in Redis: recovery on in a
// cluster.
func (r *Router) shared() bool { return r.rec.window > 0 && r.cl != nil }

// inbox keeps events for the sessions of a cluster (inbox.lua).
type inbox struct {
	reg    *redisRegistry
	cap    int
	window time.Duration
}

// inboxReply is inbox.lua's answer.
type inboxReply struct {
	status int64
	// pairs are recipient ids and their offsets, alternately.
	pairs []string
}

// put keeps event text for each target (rooms or socket ids, see
// inbox.lua) and tells their nodes. sender, when set, makes the relay's
// checks: the one target must be registered and, with sharedOnly, share a
// room with sender.
func (ib *inbox) put(rooms bool, targets []string, except string, before int64, sender string, sharedOnly bool, text []byte) (inboxReply, error) {
	mode, shared := "s", "0"
	if rooms {
		mode = "r"
	}
	if sharedOnly {
		shared = "1"
	}
	reg := ib.reg
	args := make([]any, 0, 10+len(targets))
	args = append(args, reg.p, reg.node, ib.cap, ib.window.Milliseconds(), text, mode, except, before, sender, shared)
	for _, t := range targets {
		args = append(args, t)
	}
	ctx, cancel := reg.ctx()
	defer cancel()
	res, err := scriptInbox.Run(ctx, reg.rdb, []string{reg.suspendedKey()}, args...).Slice()
	if err != nil {
		reg.failed("inbox", err, "targets", targets)
		return inboxReply{}, err
	}
	status, pairs, err := statusList(res)
	if err != nil {
		reg.failed("inbox", err, "targets", targets)
		return inboxReply{}, err
	}
	return inboxReply{status: int64(status), pairs: pairs}, nil
}

// eventText is the packet data of event with args, as the stream keeps it
// and sio.Socket.Deliver sends it.
func eventText(event string, args []any) ([]byte, error) {
	data := make([]any, 0, 1+len(args))
	data = append(data, event)
	data = append(data, args...)
	b, ok := sio.AppendJSON(nil, data)
	if !ok {
		return nil, fmt.Errorf("event %q: arguments do not encode as JSON", event)
	}
	return b, nil
}

// deliverKept sends text to this node's recipients among pairs (inbox.lua's
// ids and offsets, as its message on this node's channel lists them).
// Only onDeliver calls it, on the bus's one subscriber goroutine, so that
// a socket's events go out in stream order (see the file comment).
// Callers hold state.mu, read or write.
func (r *Router) deliverKept(pairs []string, text []byte) {
	for i := 0; i+1 < len(pairs); i += 2 {
		c := r.st.socket(pairs[i])
		if c == nil || c.s == nil || c.closing.Load() {
			continue // away: the stream has it for the replay
		}
		off := pairs[i+1]
		if c.replayedUpTo != "" && compareOffsets(off, c.replayedUpTo) <= 0 {
			continue // replayed at the recovery
		}
		if err := c.s.Deliver(text, off); err != nil {
			r.log.Debug("delivery failed", "socket_id", c.id, "err", err)
		}
	}
}

// onDeliver handles a message on this node's channel: from inbox.lua,
// "<id> <offset>\n" lines, an empty line, the event; from takeover.lua,
// "\ntaken <id>".
func (cl *cluster) onDeliver(payload string) {
	if id, ok := strings.CutPrefix(payload, "\ntaken "); ok {
		if !cl.deafToTakeovers.Load() {
			cl.r.letGo(id)
		}
		return
	}
	head, text, ok := strings.Cut(payload, "\n\n")
	if !ok {
		cl.log.Debug("malformed delivery dropped")
		return
	}
	pairs := make([]string, 0, 2*strings.Count(head, "\n")+2)
	for line := range strings.SplitSeq(head, "\n") {
		id, off, ok := strings.Cut(line, " ")
		if ok {
			pairs = append(pairs, id, off)
		}
	}
	cl.r.m.busMessage(true)
	st := cl.r.st
	st.mu.RLock()
	defer st.mu.RUnlock()
	cl.r.deliverKept(pairs, []byte(text))
}

// compareOffsets orders two stream ids ("<ms>-<seq>"): -1, 0 or 1. One
// that does not parse sorts first.
func compareOffsets(a, b string) int {
	am, as := splitOffset(a)
	bm, bs := splitOffset(b)
	switch {
	case am < bm, am == bm && as < bs:
		return -1
	case am == bm && as == bs:
		return 0
	}
	return 1
}

func splitOffset(o string) (ms, seq uint64) {
	head, tail, _ := strings.Cut(o, "-")
	ms, _ = strconv.ParseUint(head, 10, 64)
	seq, _ = strconv.ParseUint(tail, 10, 64)
	return ms, seq
}

// sendKept is clusterWire.send with recovery on: every recipient's
// stream keeps the event, and each gets it with its offset.
func (w clusterWire) sendKept(rooms []string, except string, event string, args []any) error {
	text, err := eventText(event, args)
	if err != nil {
		return err
	}
	if _, err := w.inbox.put(true, rooms, except, w.st.joinedAt, "", false, text); err != nil {
		// Redis is unreachable: this node's sockets get it all the same.
		return errors.Join(err, w.local.send(rooms, except, event, append(args[:len(args):len(args)], offsetUnkept)))
	}
	return nil // delivered from this node's channel (onDeliver)
}

// sendToKept is clusterWire.sendTo with recovery on.
func (w clusterWire) sendToKept(c *conn, event string, args []any) error {
	text, err := eventText(event, args)
	if err != nil {
		return err
	}
	if _, err := w.inbox.put(false, []string{c.id}, "", 0, "", false, text); err != nil {
		if c.s != nil {
			err = errors.Join(err, c.s.Deliver(text, offsetUnkept))
		}
		return err
	}
	return nil // delivered from its node's channel (onDeliver)
}

// relayKept is the relay's deliver with recovery on in a cluster: the
// checks, keeping and publishing are one script wherever the target is;
// a target on this node is checked here (shared room, backlog) as without
// recovery. The script runs without the node's lock: the delivery comes
// back on the target node's channel (onDeliver), in stream order, and one
// racing a recovery is sorted out by its offset (deliverKept).
func (r *Router) relayKept(c *conn, target string, sharedOnly bool, env []any) (drop string) {
	r.st.mu.RLock()
	live := c.live
	to := r.st.socket(target)
	local := to != nil && to.s != nil && !to.closing.Load()
	switch {
	case !live:
		drop = dropNoTarget
	case local && sharedOnly && !r.st.shareRoom(c, target):
		drop = dropNotInRoom
	case local && to.s.Congested():
		drop = dropCongested
	}
	r.st.mu.RUnlock()
	if drop != "" {
		return drop
	}
	text, err := eventText(rules.EventMessage, env)
	if err != nil {
		r.log.Debug("relay failed", "socket_id", c.id, "err", err)
		return ""
	}
	sender := c.id
	if local {
		sender = "" // checked above
	}
	rep, err := r.cl.inbox.put(false, []string{target}, "", 0, sender, sharedOnly, text)
	switch {
	case err != nil && local:
		// Redis is unreachable: a relay between two sockets of this node
		// goes through all the same, unkept.
		if err := to.s.Deliver(text, offsetUnkept); err != nil {
			r.log.Debug("relay failed", "socket_id", c.id, "target", target, "err", err)
		}
		return ""
	case err != nil:
		r.log.Debug("relay failed", "socket_id", c.id, "target", target, "err", err)
		return ""
	case rep.status == 1:
		return dropNoTarget
	case rep.status == 2:
		return dropNotInRoom
	}
	return ""
}

// keepAndDeliver keeps event for this node's sockets ids, which get it
// with their offsets from this node's channel: for events that do not come
// through the wire (keepForeign, the admin UI's emit).
func (r *Router) keepAndDeliver(ids []string, event string, args []any) {
	if len(ids) == 0 {
		return
	}
	text, err := eventText(event, args)
	if err != nil {
		r.log.Debug("event not sent", "event", event, "err", err)
		return
	}
	_, _ = r.cl.inbox.put(false, ids, "", 0, "", false, text) // a failure is logged by put
}

// keepForeign delivers a broadcast of a Node server or the emitter to
// this node's sockets it selects, as disconnectWhere selects them, kept
// with offsets like every other event.
func (cl *cluster) keepForeign(b redisbus.Broadcast) {
	var ids []string
	st := cl.r.st
	st.mu.RLock()
	st.each(func(c *conn) {
		if !matches(c, b.Except) && (len(b.Rooms) == 0 || matches(c, b.Rooms)) {
			ids = append(ids, c.id)
		}
	})
	st.mu.RUnlock()
	cl.r.keepAndDeliver(ids, b.Event, b.Args)
}

// sessionStore is the socket.io server's sio.SessionStore over Redis.
type sessionStore struct{ r *Router }

var _ sio.SessionStore = sessionStore{}

// Restore reads the session of pid and the events after offset
// (session.lua). A session that lost events over the cap is cleaned up
// here, once, as a normal disconnect, and the client starts a new one.
func (ss sessionStore) Restore(pid, offset string) (*sio.StoredSession, error) {
	r := ss.r
	res, err := r.session(pid, offset)
	if err != nil {
		return nil, fmt.Errorf("restore session: %w", err)
	}
	status, _ := res[0].(int64)
	switch {
	case status == 2 && len(res) == 2:
		id, _ := res[1].(string)
		r.log.Info("session not recovered: it missed more events than server.recovery_max_events", "socket_id", id)
		r.cleanupRemote(id, "transport close")
		return nil, nil
	case status != 1 || len(res) != 4:
		return nil, nil
	}
	id, _ := res[1].(string)
	rooms, err := stringList(res[2])
	if err != nil {
		return nil, fmt.Errorf("restore session %s: %w", id, err)
	}
	events, err := streamEvents(res[3])
	if err != nil {
		return nil, fmt.Errorf("restore session %s: %w", id, err)
	}
	return &sio.StoredSession{ID: id, Rooms: rooms, Missed: events}, nil
}

// session runs session.lua for pid and offset.
func (r *Router) session(pid, offset string) ([]any, error) {
	reg := r.cl.reg
	ctx, cancel := reg.ctx()
	defer cancel()
	res, err := scriptSession.Run(ctx, reg.rdb, []string{reg.pidKey(pid), reg.suspendedKey()}, reg.p, pid, offset).Slice()
	if err == nil && len(res) == 0 {
		err = errors.New("empty script reply")
	}
	if err != nil {
		reg.failed("session", err)
		return nil, err
	}
	return res, nil
}

// endAbandoned cleans up, at once and as a normal disconnect, the session
// a client that came back as a new socket had (pid, from its handshake's
// auth): it could not recover it (it had received no event, so it had no
// offset to give; its offset was unknown), and never will, so its peers
// should not wait for the window to hear it left.
func (r *Router) endAbandoned(pid string) {
	res, err := r.session(pid, "")
	if err != nil {
		return
	}
	if status, _ := res[0].(int64); status == 2 && len(res) == 2 {
		id, _ := res[1].(string)
		r.log.Debug("session given up by its client, which came back as a new socket", "socket_id", id)
		r.cleanupRemote(id, "transport close")
	}
}

// streamEvents reads XRANGE's reply of inbox.lua's entries.
func streamEvents(v any) ([]sio.StoredEvent, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("stream entries: %T", v)
	}
	out := make([]sio.StoredEvent, 0, len(list))
	for _, e := range list {
		entry, ok := e.([]any)
		if !ok || len(entry) != 2 {
			return nil, fmt.Errorf("stream entry: %v", e)
		}
		id, _ := entry[0].(string)
		fields, _ := entry[1].([]any)
		if id == "" || len(fields) != 2 {
			return nil, fmt.Errorf("stream entry: %v", e)
		}
		data, _ := fields[1].(string)
		out = append(out, sio.StoredEvent{Offset: id, Data: []byte(data)})
	}
	return out, nil
}

// stringList reads a script's list of strings.
func stringList(v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("want a list, got %T", v)
	}
	out := make([]string, len(list))
	for i, item := range list {
		if out[i], ok = item.(string); !ok {
			return nil, fmt.Errorf("want strings, got %T", item)
		}
	}
	return out, nil
}

// Sessions and their owners.

// recoverShared attaches a socket the server recovered from Redis
// (socketHandler.Recover): the session is handed to this node
// (takeover.lua), a conn is made for it from what Redis keeps, and the
// events kept since the library's replay are sent. It reports whether the
// session goes on.
func (r *Router) recoverShared(s *sio.Socket) bool {
	id := s.ID()
	upTo := s.ReplayedUpTo()
	st := r.st
	st.mu.Lock()
	if old := st.socket(id); old != nil && old.live {
		if old.s != nil && !old.closing.Load() {
			// The client came back to this node before it noticed the old
			// transport die: close both; the old one's disconnect
			// suspends the session, and the client recovers it again.
			rooms := ids(old.rooms)
			st.mu.Unlock()
			r.log.Debug("recovery while the old transport is open; closing both", "socket_id", id)
			r.tr.CloseDuplicate(old.s, s, rooms)
			return false
		}
		// Its disconnect is on its way: the session is the new socket's
		// now, and that disconnect must not suspend or clean it up.
		r.cl.reg.dropLocal(old)
	}
	defer st.mu.Unlock()
	reg := r.cl.reg
	ctx, cancel := reg.ctx()
	defer cancel()
	keys := []string{reg.sockKey(id), reg.suspendedKey(), reg.nodeSocksKey(reg.node)}
	res, err := scriptTakeover.Run(ctx, reg.rdb, keys, reg.p, id, s.PrivateID(), reg.node, upTo).Slice()
	switch {
	case err != nil:
		// Redis failed: the session is where it was. Close the
		// transport (no DISCONNECT), so that the client tries again.
		reg.failed("takeover", err, "socket_id", id)
		s.Abort()
		return false
	case len(res) != 4:
		// Expired or cleaned up since the library found it: tell the
		// client plainly that it is not in its rooms any more.
		r.log.Debug("recovered session no longer known; disconnecting", "socket_id", id)
		s.Disconnect()
		return false
	}
	c := &conn{s: s, id: id, auth: s.Auth(), query: flattenQuery(s.Query()), pid: s.PrivateID(), data: map[string]any{}}
	if claims, ok := s.Admission().(verifiedClaims); ok {
		c.claims = claims
	}
	if raw, _ := res[1].(string); raw != "" {
		if v, err := decodeJSON(raw); err == nil {
			if m, ok := v.(map[string]any); ok {
				c.data = m
			}
		}
	}
	scored, _ := stringList(res[2])
	c.rooms = make([]string, 0, len(scored)/2)
	c.seqs = make(map[string]int64, len(scored)/2)
	for i := 0; i+1 < len(scored); i += 2 {
		c.rooms = append(c.rooms, scored[i])
		c.seqs[scored[i]], _ = strconv.ParseInt(scored[i+1], 10, 64)
	}
	reg.adopt(c)
	// The library rejoined the rooms it was given; the router's, read
	// just now, are authoritative.
	for _, name := range c.rooms {
		st.wire.join(c, name)
	}
	events, err := streamEvents(res[3])
	if err != nil {
		reg.failed("takeover", err, "socket_id", id)
	}
	for _, ev := range events {
		if err := s.Deliver(ev.Data, ev.Offset); err != nil {
			r.log.Debug("replay failed", "socket_id", id, "err", err)
		}
		upTo = ev.Offset
	}
	c.replayedUpTo = upTo
	r.adminConnected(c)
	r.m.recovered()
	s.Bind(c)
	r.log.Debug("socket recovered", "socket_id", id, "rooms", len(c.rooms), "replayed_late", len(events))
	return true
}

// letGo drops this node's conn of socket id, whose client recovered the
// session on another node (takeover.lua says so): the node still holds
// the old transport when it has not noticed it die (a client whose network
// changed), and would answer rules about the socket from the stale conn
// until its heartbeat times out. The transport is closed without a word.
// Redis is asked first: the client may have come back here since.
func (r *Router) letGo(id string) {
	st := r.st
	st.mu.Lock()
	c := st.socket(id)
	if c == nil || c.s == nil {
		st.mu.Unlock()
		return
	}
	reg := r.cl.reg
	ctx, cancel := reg.ctx()
	node, err := reg.rdb.HGet(ctx, reg.sockKey(id), "node").Result()
	cancel()
	if err != nil || node == reg.node {
		st.mu.Unlock()
		return
	}
	reg.dropLocal(c)
	st.mu.Unlock()
	r.log.Debug("socket recovered on another node; old transport closed", "socket_id", id, "node", node)
	c.s.Abort() // its disconnect finds the conn gone
}

// disconnectedShared is disconnected with sessions in Redis: a
// recoverable drop suspends the session there, anything else cleans it
// up; either only if the session is still this node's. The conn is
// dropped from the node in every case. Callers hold state.mu.
func (r *Router) disconnectedShared(c *conn, reason string) {
	reg := r.cl.reg
	ctx, cancel := reg.ctx()
	defer cancel()
	if r.suspendable(reason) {
		reg.dropLocal(c)
		st, err := reg.suspend(ctx, c.id, r.rec.window)
		switch {
		case err != nil:
		case st == 1:
			r.adminDisconnected(c, reason)
			r.log.Debug("socket suspended for recovery", "socket_id", c.id, "reason", reason, "rooms", len(c.rooms), "window", r.rec.window)
		default:
			r.log.Debug("dropped socket was taken over by another node", "socket_id", c.id)
		}
		return
	}
	taken, err := scriptDrop.Run(ctx, reg.rdb, []string{reg.sockKey(c.id)}, reg.p, c.id, reg.node).Int()
	if err != nil {
		reg.failed("drop", err, "socket_id", c.id)
	}
	if taken != 1 {
		reg.dropLocal(c)
		return
	}
	r.cleanupLocked(c, reason)
}

// suspend suspends socket id of this node for window (suspend.lua): 1
// suspended, 0 another node's, -1 not registered. A failure is logged.
func (r *redisRegistry) suspend(ctx context.Context, id string, window time.Duration) (int, error) {
	st, err := scriptSuspend.Run(ctx, r.rdb, []string{r.sockKey(id), r.suspendedKey()}, r.p, id, r.node, window.Milliseconds()).Int()
	if err != nil {
		r.failed("suspend", err, "socket_id", id)
	}
	return st, err
}

// adopt makes c, a session this node took over, one of its conns: Redis
// has it already.
func (r *redisRegistry) adopt(c *conn) {
	r.mu.Lock()
	r.conns[c.id] = c
	r.mu.Unlock()
	c.live = true
}

// dropLocal forgets c on this node only: its session lives on in Redis
// (suspended, or another node's).
func (r *redisRegistry) dropLocal(c *conn) {
	r.mu.Lock()
	if r.conns[c.id] == c {
		delete(r.conns, c.id)
	}
	r.mu.Unlock()
	c.live = false
}

// suspendOrphans suspends the sockets Redis still lists as this node's
// that the node no longer holds: their transport closed while Redis was
// unreachable, so neither their suspension nor their cleanup reached it.
// Suspended, they are recovered or, after the window, cleaned up once as
// any other. Callers hold state.mu (rebuild).
func (cl *cluster) suspendOrphans() {
	reg := cl.reg
	ctx, cancel := reg.ctx()
	defer cancel()
	ids, err := reg.rdb.SMembers(ctx, reg.nodeSocksKey(reg.node)).Result()
	if err != nil {
		reg.failed("orphans", err)
		return
	}
	n := 0
	for _, id := range ids {
		if reg.local(id) != nil {
			continue
		}
		st, err := reg.suspend(ctx, id, cl.inbox.window)
		if err != nil {
			return
		}
		if st == 1 {
			n++
		} else if st == -1 {
			reg.rdb.SRem(ctx, reg.nodeSocksKey(reg.node), id)
		}
	}
	if n > 0 {
		cl.log.Warn("suspended sockets that closed while redis was unreachable", "sockets", n)
	}
}

// suspendNode suspends the sockets left on a dead node this node claimed
// (suspendnode.lua).
func (r *redisRegistry) suspendNode(ctx context.Context, dead string, window time.Duration) (int, error) {
	keys := []string{r.suspendedKey(), r.nodeSocksKey(dead)}
	n, err := scriptSuspendNode.Run(ctx, r.rdb, keys, r.p, dead, window.Milliseconds()).Int()
	if err != nil {
		return 0, fmt.Errorf("redis registry: suspend the sockets of node %q: %w", dead, err)
	}
	return n, nil
}

// reapExpired cleans up the suspended sessions whose window has passed
// and that this node took (expired.lua): each is taken by one node only.
func (cl *cluster) reapExpired(ctx context.Context) {
	reg := cl.reg
	res, err := scriptExpired.Run(ctx, reg.rdb, []string{reg.suspendedKey()}, reg.p, expiredBatch).Slice()
	var ids []string
	if err == nil && len(res) == 2 {
		ids, err = stringList(res[0])
	} else if err == nil {
		err = fmt.Errorf("script reply %v", res)
	}
	if err != nil {
		cl.log.Warn("looking for expired sessions failed", "err", err)
		return
	}
	if n, ok := res[1].(int64); ok {
		cl.suspended.Store(n)
	}
	for _, id := range ids {
		cl.log.Debug("recovery window passed", "socket_id", id)
		cl.r.cleanupRemote(id, "transport close")
	}
}

// suspendedCount is how many sessions wait for their client: this node's,
// or, with sessions in Redis, the cluster's as of the watcher's last
// check. Callers hold state.mu.
func (r *Router) suspendedCount() int {
	if r.shared() {
		return int(r.cl.suspended.Load())
	}
	return r.rec.suspended
}
