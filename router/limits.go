package router

import (
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/rtcio/rtcio-router/router/internal/sio"
	"github.com/rtcio/rtcio-router/rules"
)

// limiter holds one socket's token buckets (rules.Limits) and its count of
// dropped events. Buckets are created on first use, so a socket that never
// sends an event costs nothing, and rebuilt only when a reload changes
// their rate or burst, so a reload does not hand a flooder a fresh burst.
type limiter struct {
	mu         sync.Mutex
	all        *bucket
	relay      *bucket
	relayBytes *bucket // tokens are envelope bytes
	events     map[string]*bucket
	// drops counts dropped events since windowEnd-within; flood control.
	drops     int
	windowEnd time.Time
}

type bucket struct {
	rate  float64
	burst int
	tb    *rate.Limiter
}

// take spends n tokens of the bucket in slot, made from spec if the slot
// is empty or its spec changed. A nil spec is unlimited. More than the
// burst is charged the burst: such an envelope (bytes_burst below the
// largest message) needs a full bucket instead of never passing.
func take(slot **bucket, spec *rules.Bucket, now time.Time, n int) bool {
	if spec == nil {
		return true
	}
	b := fresh(slot, spec)
	return b.tb.AllowN(now, min(n, b.burst))
}

// fresh returns the bucket in slot, replacing it first when it is missing
// or was made for another rate or burst.
func fresh(slot **bucket, spec *rules.Bucket) *bucket {
	if b := *slot; b != nil && b.rate == spec.Rate && b.burst == spec.Burst {
		return b
	}
	*slot = &bucket{rate: spec.Rate, burst: spec.Burst, tb: rate.NewLimiter(rate.Limit(spec.Rate), spec.Burst)}
	return *slot
}

// verdict is what the limits say about one event.
type verdict struct {
	// spec is the bucket that dropped the event (its reject answers the
	// sender); nil: the event may be handled.
	spec  *rules.Bucket
	flood bool // the socket passed the flood threshold: disconnect it
}

// check takes a token for event (relay: the #rtcio:message relay, an
// envelope of size bytes) from the buckets of lim that apply, and counts a
// drop towards flood control.
func (l *limiter) check(lim *rules.Limits, event string, relay bool, size int, now time.Time) verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	var spec *rules.Bucket
	switch {
	case relay:
		// An envelope the byte budget drops has spent its envelope token,
		// as an event dropped by its own bucket has spent its token of all.
		if !take(&l.relay, lim.Relay, now, 1) {
			spec = lim.Relay
			break
		}
		if take(&l.relayBytes, lim.RelayBytes, now, size) {
			return verdict{}
		}
		spec = lim.RelayBytes
	default:
		if !take(&l.all, lim.All, now, 1) {
			spec = lim.All
			break
		}
		es := lim.Events[event]
		if es == nil {
			return verdict{}
		}
		old := l.events[event]
		b := old
		if fresh(&b, es) != old { // the map is written only for a new bucket
			if l.events == nil {
				l.events = map[string]*bucket{}
			}
			l.events[event] = b
		}
		if b.tb.AllowN(now, 1) {
			return verdict{}
		}
		spec = es
	}
	return verdict{spec: spec, flood: l.countDrop(lim, now)}
}

// countDrop counts one dropped event and reports whether the socket is now
// past the flood threshold. l.mu must be held.
func (l *limiter) countDrop(lim *rules.Limits, now time.Time) bool {
	if lim.FloodDrops <= 0 {
		return false
	}
	if now.After(l.windowEnd) {
		l.drops, l.windowEnd = 0, now.Add(lim.FloodWithin)
	}
	l.drops++
	return l.drops >= lim.FloodDrops
}

// dropped counts an envelope that passed the budgets but was dropped on the
// way (its target congested) as a drop of this socket, the sender's: a
// sender that keeps pushing into a congested peer is the one flood control
// disconnects. It reports whether the socket is past the threshold.
func (l *limiter) dropped(lim *rules.Limits, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.countDrop(lim, now)
}

// admit applies the rate limits to one event of c before it is handled.
// A dropped event is answered as its bucket's reject says; a socket past
// the flood threshold is disconnected. It reports whether to go on.
func (r *Router) admit(c *conn, set *rules.Set, ev *sio.Event) bool {
	event, args, reply := ev.Name, ev.Args, ev.Reply
	relay, size := event == rules.EventMessage, 0
	if relay && set.Limits.RelayBytes != nil {
		size = relaySize(ev)
	}
	v := c.limits.check(&set.Limits, event, relay, size, r.st.now())
	if v.spec == nil {
		return true
	}
	r.m.rateLimited(set, event)
	if v.flood {
		r.m.flooded()
		r.log.Warn("socket disconnected: flooding past its rate limit", "socket_id", c.id, "event", event,
			"drops", set.Limits.FloodDrops, "within", set.Limits.FloodWithin)
		r.st.wire.hangUp(c)
		return false
	}
	r.log.Debug("event dropped: rate limit", "socket_id", c.id, "event", event, "rate", v.spec.Spec, "burst", v.spec.Burst, "size", size)
	if v.spec.Reject == nil {
		return false
	}
	if ev.Object != nil {
		// The reject payload may read the envelope: give it Go values.
		args = []any{ev.Object.Decode()}
	}
	if args == nil {
		args = []any{}
	}
	var data any
	if len(args) > 0 {
		data = args[0]
	}
	r.st.mu.Lock()
	defer r.st.mu.Unlock()
	if !c.live {
		return false
	}
	r.st.beginEvent()
	acked := false
	x := &run{
		r: r, c: c, rule: &rules.Rule{Name: "limits", Event: event}, reply: reply, acked: &acked, hangUp: new(bool),
		env: &rules.Env{Data: data, Args: args, Event: event, Socket: c.info(), Stores: host{r.st}, Environ: set.Environ},
	}
	x.reject(v.spec.Reject)
	return false
}

// relaySize is what an envelope (the argument of #rtcio:message) weighs
// against the byte budget. One kept as the client's JSON weighs the bytes
// the client sent, which the relay forwards as they are; one decoded into
// Go values (by the generic decoder, or handed to Local) weighs what it
// encodes to, since that is what the relay then writes to the target.
func relaySize(ev *sio.Event) int {
	if ev.Object != nil {
		return ev.Object.Len()
	}
	if len(ev.Args) == 0 {
		return 0
	}
	return encodedSize(ev.Args[0])
}

// encodedSize is the length of v's JSON as the relay writes it, exactly:
// it is encoded into a pooled buffer. Why exact and not a guess: the
// generic path re-encodes with HTML escaping, so a string of '<' grows
// sixfold on its way out; an estimate that missed that would let a client
// buy six bytes of a receiver's backlog for one of its budget by taking the
// generic path on purpose. Only envelopes the fast path refuses (and
// Local's) come here, so the encoding is off the relay's hot path.
func encodedSize(v any) int {
	bp := sizeBufs.Get().(*[]byte)
	b, _ := sio.AppendJSON((*bp)[:0], v)
	n := len(b)
	*bp = b[:0]
	sizeBufs.Put(bp)
	return n
}

// sizeBufs are encodedSize's scratch buffers.
var sizeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}
