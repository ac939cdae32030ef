package rules

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Limits are the per-socket rate limits of `limits:`. Each is a token bucket
// owned by one socket: a client that sends faster than its rate, once its
// burst is spent, has the excess dropped (and optionally answered), and one
// that keeps at it past Flood is disconnected. They reload live; a socket's
// buckets are kept across a reload that leaves their rate and burst alone.
type Limits struct {
	// All limits every event handled by rules, together; nil: unlimited.
	All *Bucket
	// Relay limits #rtcio:message envelopes; nil: unlimited. The default is
	// DefaultRelayRate / DefaultRelayBurst.
	Relay *Bucket
	// Events limits single events by name, on top of All.
	Events map[string]*Bucket
	// FloodDrops dropped events within FloodWithin disconnect the socket;
	// 0 never does.
	FloodDrops  int
	FloodWithin time.Duration
}

// Bucket is one token bucket: Rate tokens a second, at most Burst saved.
type Bucket struct {
	Rate  float64 // tokens per second
	Burst int
	Spec  string // the rate as written ("20/s"), for logs and summaries
	// Reject answers the sender when an event is dropped; nil drops it
	// silently.
	Reject *Reply
	Pos    Pos
}

// The relay's default bucket is sized for a real ICE exchange at its worst:
// a peer joining a room of 32 renegotiates with 31 peers at once, a few
// dozen candidates each, which is well over a thousand envelopes in a
// second or two. A client that needs more than that is not doing WebRTC.
const (
	DefaultRelayRate   = 1000
	DefaultRelayBurst  = 2000
	DefaultFloodDrops  = 1000
	DefaultFloodWithin = 10 * time.Second
)

func defaultLimits() Limits {
	return Limits{
		Relay:       &Bucket{Rate: DefaultRelayRate, Burst: DefaultRelayBurst, Spec: fmt.Sprintf("%d/s", DefaultRelayRate)},
		FloodDrops:  DefaultFloodDrops,
		FloodWithin: DefaultFloodWithin,
	}
}

// limitsFields are the keys of limits:, read by limits.
var limitsFields = []field{
	{"all", "One bucket for every event handled by rules (the relay has its own); default unlimited.", bucketValue(), false},
	{"relay", "The `#rtcio:message` relay's bucket, or `off`; default `1000/s` with a burst of 2000, room for a full ICE exchange with dozens of peers.",
		obj("anyOf", []schema{bucketValue(), obj("const", "off")}), false},
	{"events", "Buckets for single events by name, checked after `all`.",
		obj("type", "object", "additionalProperties", bucketValue()), false},
	{"flood", "Disconnect a socket after `drops` dropped events within `within`; default 1000 within 10s; `drops: 0` never disconnects.",
		object(floodFields), false},
}

// bucketFields are the keys of one bucket, read by bucket.
var bucketFields = []field{
	{"rate", "Events allowed per unit of time: `20/s`, `300/m`, `5/10s`.",
		obj("type", "string", "pattern", ratePattern, "examples", []any{"20/s", "300/m", "5/10s"}), true},
	{"burst", "How many events may arrive at once before the rate applies; default the rate's count.",
		countValue(1, 1), false},
	{"reject", "The answer to the sender when an event is dropped: `emit` an event, answer the `ack` callback, or both; default silent.",
		object(replyFields).with(
			kw{"anyOf", []schema{obj("required", []string{"emit"}), obj("required", []string{"ack"})}},
			kw{"examples", []any{map[string]any{"emit": "rate-limited", "payload": map[string]any{"event": "event"}}}}), false},
}

// floodFields are the keys of limits.flood, read by flood.
var floodFields = []field{
	{"drops", "Dropped events that disconnect the socket (0: never); default 1000.", countValue(0, DefaultFloodDrops), false},
	{"within", "The window the drops are counted in; default `10s`.", durationValue(DefaultFloodWithin.String()), false},
}

// ratePattern is parseRate as a regular expression.
const ratePattern = `^ *[0-9]+(\.[0-9]+)? */ *([0-9]+(\.[0-9]*)?)?(ms|s|m|h) *$`

func bucketValue() schema {
	return object(bucketFields).with(kw{"examples", []any{map[string]any{"rate": "20/s", "burst": 40}}})
}

var (
	limitsKeys = keysOf(limitsFields)
	bucketKeys = keysOf(bucketFields)
	floodKeys  = keysOf(floodFields)
)

// limits reads the limits: section. Event names are checked against the
// rules afterwards (checkLimitedEvents), once every rule is known.
func (l *loader) limits(n *yaml.Node) {
	lim := &l.set.Limits
	for _, p := range l.pairs(n, "limits") {
		what := "limits." + p.key.Value
		switch p.key.Value {
		case "all":
			lim.All = l.bucket(p.val, what)
		case "relay":
			if p.val.Kind == yaml.ScalarNode && p.val.Value == "off" {
				lim.Relay = nil
				continue
			}
			lim.Relay = l.bucket(p.val, what)
		case "events":
			lim.Events = map[string]*Bucket{}
			for _, ep := range l.pairs(p.val, what) {
				if b := l.bucket(ep.val, what+"."+ep.key.Value); b != nil {
					b.Pos = posOf(ep.key)
					lim.Events[ep.key.Value] = b
				}
			}
		case "flood":
			for _, fp := range l.pairs(p.val, what) {
				switch fp.key.Value {
				case "drops":
					lim.FloodDrops = int(l.integer(fp.val, what+".drops", 0))
				case "within":
					lim.FloodWithin = l.duration(fp.val, what+".within")
				default:
					l.unknown(fp.key, what, floodKeys)
				}
			}
		default:
			l.unknown(p.key, "limits", limitsKeys)
		}
	}
}

func (l *loader) bucket(n *yaml.Node, what string) *Bucket {
	b := &Bucket{Pos: posOf(n)}
	burst := int64(-1)
	ps := l.pairs(n, what)
	for _, p := range ps {
		switch p.key.Value {
		case "rate":
			if s, ok := l.str(p.val, what+".rate"); ok {
				count, per, err := parseRate(s)
				if err != nil {
					l.errf(p.val, "%s.rate: %v", what, err)
					continue
				}
				b.Rate, b.Spec = count/per.Seconds(), strings.ReplaceAll(s, " ", "")
				if burst < 0 {
					b.Burst = max(1, int(math.Ceil(count)))
				}
			}
		case "burst":
			burst = l.integer(p.val, what+".burst", 1)
			b.Burst = int(burst)
		case "reject":
			b.Reject = l.reply(p.val)
		default:
			l.unknown(p.key, what, bucketKeys)
		}
	}
	if b.Spec == "" {
		if n.Kind == yaml.MappingNode && !hasKey(n, "rate") {
			l.errf(n, "%s: missing field %q (such as 20/s)", what, "rate")
		}
		return nil
	}
	return b
}

// parseRate reads COUNT/UNIT or COUNT/DURATION: 20/s, 300/m, 5/10s.
func parseRate(s string) (count float64, per time.Duration, err error) {
	num, unit, ok := strings.Cut(strings.ReplaceAll(s, " ", ""), "/")
	if !ok {
		return 0, 0, fmt.Errorf("want COUNT/UNIT such as 20/s, 300/m or 5/10s, got %q", s)
	}
	count, err = strconv.ParseFloat(num, 64)
	if err != nil || count <= 0 || math.IsInf(count, 0) {
		return 0, 0, fmt.Errorf("the count must be a positive number, got %q", num)
	}
	written := unit
	if unit != "" && unit[0] >= 'a' && unit[0] <= 'z' {
		unit = "1" + unit
	}
	per, err = time.ParseDuration(unit)
	if err != nil || per <= 0 {
		unit = written
		return 0, 0, fmt.Errorf("the unit must be s, m, h or a duration such as 10s, got %q", unit)
	}
	return count, per, nil
}

// checkLimitedEvents refuses a per-event limit for an event no rule
// handles: it would never apply, which is almost always a typo.
func (l *loader) checkLimitedEvents() {
	handled := make([]string, 0, len(l.set.byEvent))
	for ev := range l.set.byEvent {
		if ev != HookConnect && ev != HookDisconnecting {
			handled = append(handled, ev)
		}
	}
	slices.Sort(handled)
	for ev, b := range l.set.Limits.Events {
		if !slices.Contains(handled, ev) {
			hint := suggest(ev, handled)
			if ev == "#rtcio:message" {
				hint = " (limit the relay with limits.relay)"
			}
			l.errAt(b.Pos, "limits.events: no rule handles %q%s", ev, hint)
		}
	}
}

// describe is the limits line of Summary.
func (lim Limits) describe() string {
	var parts []string
	add := func(name string, b *Bucket) {
		if b != nil {
			parts = append(parts, fmt.Sprintf("%s %s burst %d", name, b.Spec, b.Burst))
		}
	}
	add("all", lim.All)
	add("relay", lim.Relay)
	events := make([]string, 0, len(lim.Events))
	for ev := range lim.Events {
		events = append(events, ev)
	}
	slices.Sort(events)
	for _, ev := range events {
		add(ev, lim.Events[ev])
	}
	if lim.FloodDrops > 0 {
		parts = append(parts, fmt.Sprintf("flood %d drops in %s", lim.FloodDrops, lim.FloodWithin))
	}
	return strings.Join(parts, "; ")
}
