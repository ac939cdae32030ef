package router

import (
	"context"

	"github.com/rtcio/rtcio-router/router/internal/redisbus"
	"github.com/rtcio/rtcio-router/router/internal/sio"
	"github.com/rtcio/rtcio-router/rules"
)

// The hard-wired #rtcio:message relay: the one event the rules never see.

// relay forwards an rtc.io envelope {source, target, data} to its target.
// The source is stamped with the sender's real id so peers can trust it,
// and, unless turned off, the target must share a room with the sender.
// An envelope for a target whose outgoing backlog is congested is dropped
// and counted against the sender's flood control: whoever fills a peer's
// queue is the one throttled, then disconnected, never the peer.
func (r *Router) relay(c *conn, set *rules.Set, ev *sio.Event) {
	// The envelope was decoded for this event alone (Local copies what a
	// test hands it), so it is stamped in place rather than copied per
	// message.
	var target string
	var env any
	switch {
	case ev.Object != nil: // kept as the client wrote it (sio.RawObject)
		target, _ = ev.Object.String(rules.EnvelopeTarget)
		ev.Object.Stamp(rules.EnvelopeSource, c.id)
		env = ev.Object
	case len(ev.Args) > 0:
		m, ok := ev.Args[0].(map[string]any) // from Local, or left to the generic decoder
		if !ok {
			r.m.relayDrop(dropBadEnvelope)
			r.log.Debug("relay dropped: envelope is not an object", "socket_id", c.id)
			return
		}
		target, _ = m[rules.EnvelopeTarget].(string)
		m[rules.EnvelopeSource] = c.id
		env = m
	default:
		r.m.relayDrop(dropBadEnvelope)
		r.log.Debug("relay dropped: no envelope", "socket_id", c.id)
		return
	}
	if target == "" || target == c.id {
		r.m.relayDrop(dropBadEnvelope)
		r.log.Debug("relay dropped: bad target", "socket_id", c.id)
		return
	}
	drop := r.deliver(c, target, set.Relay.SharedRoomOnly, []any{env})
	if drop == "" {
		if r.m != nil {
			r.m.relayed(relaySize(ev))
		}
		return
	}
	r.m.relayDrop(drop)
	if drop != dropCongested {
		return
	}
	r.log.Debug("relay dropped: the target's outgoing backlog is congested", "socket_id", c.id, "target", target)
	if c.limits.dropped(&set.Limits, r.st.now()) {
		r.m.flooded()
		r.log.Warn("socket disconnected: flooding a congested peer", "socket_id", c.id, "target", target,
			"drops", set.Limits.FloodDrops, "within", set.Limits.FloodWithin)
		// Closing runs the disconnect path, which takes the state lock:
		// deliver has released it.
		r.st.wire.hangUp(c)
	}
}

// deliver sends env from c to target if it may go there, and returns why
// it was dropped (a relay drop reason), "" if it was sent.
func (r *Router) deliver(c *conn, target string, sharedOnly bool, env []any) (drop string) {
	if r.cl != nil && r.cl.inbox != nil {
		return r.relayKept(c, target, sharedOnly, env) // recovery_cluster.go
	}
	// The read lock spans the check and the send, so the target cannot
	// leave the shared room in between; other relays run concurrently.
	r.st.mu.RLock()
	// The target must be a connected socket, never a room name, or one
	// envelope could reach a whole room.
	to := r.st.socket(target)
	if to == nil && r.cl != nil {
		// Not on this node: in a cluster it may be on another. The checks
		// are Redis round trips, made without the node's lock: Redis is
		// the authority on remote sockets, and a join waiting for the
		// write lock must not wait for them.
		live := c.live
		r.st.mu.RUnlock()
		return r.deliverRemote(c, live, target, sharedOnly, env)
	}
	defer r.st.mu.RUnlock()
	if to == nil || !c.live {
		r.log.Debug("relay refused: target unknown", "socket_id", c.id, "target", target)
		return dropNoTarget
	}
	if sharedOnly && !r.st.shareRoom(c, target) {
		r.log.Debug("relay refused: target in no room with the sender", "socket_id", c.id, "target", target)
		return dropNotInRoom
	}
	// to.s is replaced only under the write lock (recovery), so it is the
	// target's current socket; Local's sockets have none, and no backlog.
	if to.s != nil && to.s.Congested() {
		return dropCongested
	}
	if err := r.st.wire.sendTo(to, rules.EventMessage, env); err != nil {
		r.log.Debug("relay failed", "socket_id", c.id, "err", err)
	}
	return ""
}

// deliverRemote relays env from c to target on another node of the
// cluster, if it is connected there and, with sharedOnly, shares a room
// with c: the checks and the publish are one script (relay.lua), one
// round trip, asked by ids only (no conn is read without the lock).
func (r *Router) deliverRemote(c *conn, live bool, target string, sharedOnly bool, env []any) (drop string) {
	if !live {
		return dropNoTarget
	}
	var status int64
	b := redisbus.Broadcast{Rooms: []string{target}, Event: rules.EventMessage, Args: env, Tag: tagSockets}
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	err := r.cl.bus.PublishVia(ctx, b, func(ctx context.Context, channel string, payload []byte) error {
		var err error
		status, err = r.cl.reg.relayTo(ctx, c.id, target, sharedOnly, channel, payload)
		return err
	})
	switch {
	case err != nil:
		r.log.Debug("relay failed", "socket_id", c.id, "target", target, "err", err)
		return ""
	case status == 1:
		r.log.Debug("relay refused: target unknown", "socket_id", c.id, "target", target)
		return dropNoTarget
	case status == 2:
		r.log.Debug("relay refused: target in no room with the sender", "socket_id", c.id, "target", target)
		return dropNotInRoom
	}
	r.m.busMessage(false)
	return ""
}
