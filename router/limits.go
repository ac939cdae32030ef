package router

import (
	"sync"
	"time"

	"github.com/rtcio/rtcio-router/rules"
	"golang.org/x/time/rate"
)

// limiter holds one socket's token buckets (rules.Limits) and its count of
// dropped events. Buckets are created on first use, so a socket that never
// sends an event costs nothing, and rebuilt only when a reload changes
// their rate or burst, so a reload does not hand a flooder a fresh burst.
type limiter struct {
	mu     sync.Mutex
	all    *bucket
	relay  *bucket
	events map[string]*bucket
	// drops counts dropped events since windowEnd-within; flood control.
	drops     int
	windowEnd time.Time
}

type bucket struct {
	rate  float64
	burst int
	tb    *rate.Limiter
}

// take spends one token of the bucket in slot, made from spec if the slot
// is empty or its spec changed. A nil spec is unlimited.
func take(slot **bucket, spec *rules.Bucket, now time.Time) bool {
	if spec == nil {
		return true
	}
	return fresh(slot, spec).tb.AllowN(now, 1)
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

// check takes a token for event (relay: the #rtcio:message relay) from the
// buckets of lim that apply, and counts a drop towards flood control.
func (l *limiter) check(lim *rules.Limits, event string, relay bool, now time.Time) verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	var spec *rules.Bucket
	switch {
	case relay:
		if take(&l.relay, lim.Relay, now) {
			return verdict{}
		}
		spec = lim.Relay
	default:
		if !take(&l.all, lim.All, now) {
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
	v := verdict{spec: spec}
	if lim.FloodDrops > 0 {
		if now.After(l.windowEnd) {
			l.drops, l.windowEnd = 0, now.Add(lim.FloodWithin)
		}
		l.drops++
		v.flood = l.drops >= lim.FloodDrops
	}
	return v
}

// admit applies the rate limits to one event of c before it is handled.
// A dropped event is answered as its bucket's reject says; a socket past
// the flood threshold is disconnected. It reports whether to go on.
func (r *Router) admit(c *conn, set *rules.Set, event string, data any, args []any, reply func(any)) bool {
	v := c.limits.check(&set.Limits, event, event == eventMessage, r.st.now())
	if v.spec == nil {
		return true
	}
	if v.flood {
		r.log.Warn("socket disconnected: flooding past its rate limit", "socket_id", c.id, "event", event,
			"drops", set.Limits.FloodDrops, "within", set.Limits.FloodWithin)
		r.st.wire.hangUp(c)
		return false
	}
	r.log.Debug("event dropped: rate limit", "socket_id", c.id, "event", event, "rate", v.spec.Spec, "burst", v.spec.Burst)
	if v.spec.Reject == nil {
		return false
	}
	if args == nil {
		args = []any{}
	}
	if event == eventMessage {
		// The reject payload may read the envelope: give it Go values.
		args, _ = materialize(args).([]any)
		if len(args) > 0 {
			data = args[0]
		}
	}
	r.st.mu.Lock()
	defer r.st.mu.Unlock()
	if !c.live {
		return false
	}
	acked := false
	x := &run{
		r: r, c: c, rule: &rules.Rule{Name: "limits", Event: event}, reply: reply, acked: &acked, hangUp: new(bool),
		env: &rules.Env{Data: data, Args: args, Event: event, Socket: c.info(), Stores: r.st.storeView, Environ: set.Environ},
	}
	x.reject(v.spec.Reject)
	return false
}
