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
	// RelayBytes limits the bytes of those envelopes, as the client encoded
	// them; nil: unlimited. Counting envelopes is not enough: 300 envelopes
	// of 61 KB are well inside the envelope burst, yet 18 MB, enough to
	// fill any receiver's outgoing backlog and get it dropped as too slow.
	// Its Rate is bytes a second, its Burst bytes; its Reject is Relay's.
	// The default is DefaultRelayByteRate / DefaultRelayByteBurst.
	RelayBytes *Bucket
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
//
// The default byte budget is sized the same way. A newcomer to a 30-peer
// mesh sends each of its 29 peers an offer (a 4 KB SDP is ~4.3 KB as an
// envelope: target, keys and its ~70 CRLFs escaped) and 20 to 30 trickled
// ICE candidates of ~300 B: 4.3 KB + 25 × 0.3 KB ≈ 11.8 KB a peer, and
// 29 × 11.8 KB ≈ 342 KB (754 envelopes) within a second or two. The burst,
// 1 MiB, holds three such storms back to back (an ICE restart or a
// renegotiation for screen sharing right after the offer is a second one),
// and 512 KiB/s refills a whole storm in 0.7 s. Yet one sender's burst is
// an eighth of the 8 MiB a receiver may have queued before the transport
// drops it as too slow, a quarter of the half of it at which the relay
// stops delivering to that receiver (the router's congested-receiver
// rule), and at 512 KiB/s a sender needs six seconds past its burst to
// reach even that half of a receiver that reads nothing at all.
const (
	DefaultRelayRate      = 1000
	DefaultRelayBurst     = 2000
	DefaultRelayByteRate  = 512 << 10 // bytes a second
	DefaultRelayByteBurst = 1 << 20   // bytes
	DefaultFloodDrops     = 1000
	DefaultFloodWithin    = 10 * time.Second
)

func defaultLimits() Limits {
	return Limits{
		Relay:       defaultRelay(),
		RelayBytes:  defaultRelayBytes(),
		FloodDrops:  DefaultFloodDrops,
		FloodWithin: DefaultFloodWithin,
	}
}

// defaultRelay and defaultRelayBytes make a fresh bucket each time, not a
// shared one: relayLimits fills in the keys a file sets, in place.
func defaultRelay() *Bucket {
	return &Bucket{Rate: DefaultRelayRate, Burst: DefaultRelayBurst, Spec: fmt.Sprintf("%d/s", DefaultRelayRate)}
}

func defaultRelayBytes() *Bucket {
	return &Bucket{Rate: DefaultRelayByteRate, Burst: DefaultRelayByteBurst, Spec: sizeString(DefaultRelayByteRate) + "/s"}
}

// limitsFields are the keys of limits:, read by limits.
var limitsFields = []field{
	{"all", "One bucket for every event handled by rules (the relay has its own); default unlimited.", bucketValue(), false},
	{"relay", "The `#rtcio:message` relay's envelope and byte budgets, or `off` for neither; default `1000/s` with a burst of 2000 and `512KiB/s` with a burst of 1 MiB, room for a full ICE exchange with dozens of peers. Keys left out keep their defaults.",
		obj("anyOf", []schema{relayBucketValue(), obj("const", "off")}), false},
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

// relayLimitFields are the keys of limits.relay, read by relayLimits: a
// bucket's keys, each optional here because the relay has defaults, and the
// byte budget, which only the relay has (only its envelopes keep the bytes
// the client sent, so only they are counted without encoding them again).
var relayLimitFields = []field{
	{"rate", "Envelopes allowed per unit of time: `1000/s` (the default), `200/s`, `6000/m`.", bucketFields[0].value, false},
	{"burst", "How many envelopes may arrive at once before the rate applies; default 2000 with the default rate, else the rate's count.",
		countValue(1, DefaultRelayBurst), false},
	{"reject", "The answer to the sender when an envelope is dropped, over either budget; default silent.", bucketFields[2].value, false},
	{"bytes", "Envelope bytes allowed per unit of time, as the client encoded them: `512KiB/s` (the default), `1MB/s`, `64KiB/100ms`; or `off`. Counts what envelopes weigh, which the envelope rate does not.",
		obj("anyOf", []schema{
			obj("type", "string", "pattern", byteRatePattern, "examples", []any{"512KiB/s", "1MB/s", "64KiB/100ms"}),
			obj("const", "off"),
		}), false},
	{"bytes_burst", "How many envelope bytes may arrive at once before `bytes` applies (at least 1024): `1MiB`, `262144`; default 1 MiB with the default `bytes`, else its size. An envelope larger than this needs a full bucket.",
		sizeValue(1024, DefaultRelayByteBurst, "1MiB", "256KiB"), false},
}

// floodFields are the keys of limits.flood, read by flood.
var floodFields = []field{
	{"drops", "Dropped events that disconnect the socket (0: never); default 1000.", countValue(0, DefaultFloodDrops), false},
	{"within", "The window the drops are counted in; default `10s`.", durationValue(DefaultFloodWithin.String()), false},
}

// ratePattern is parseRate as a regular expression.
const ratePattern = `^ *[0-9]+(\.[0-9]+)? */ *([0-9]+(\.[0-9]*)?)?(ms|s|m|h) *$`

// byteRatePattern is parseByteRate as a regular expression: sizePattern
// without zero, then ratePattern's unit.
const byteRatePattern = `^ *0*[1-9][0-9]* *(KiB|MiB|KB|MB)? */ *([0-9]+(\.[0-9]*)?)?(ms|s|m|h) *$`

func bucketValue() schema {
	return object(bucketFields).with(kw{"examples", []any{map[string]any{"rate": "20/s", "burst": 40}}})
}

// relayBucketValue is limits.relay as relayLimits reads it; bytes_burst
// next to `bytes: off` is refused there, so here too.
func relayBucketValue() schema {
	return object(relayLimitFields).with(
		kw{"if", obj("required", []string{"bytes"}, "properties", obj("bytes", obj("const", "off")))},
		kw{"then", obj("not", obj("required", []string{"bytes_burst"}))},
		kw{"examples", []any{map[string]any{"rate": "200/s", "burst": 500, "bytes": "256KiB/s", "bytes_burst": "512KiB"}}})
}

var (
	limitsKeys     = keysOf(limitsFields)
	bucketKeys     = keysOf(bucketFields)
	relayLimitKeys = keysOf(relayLimitFields)
	floodKeys      = keysOf(floodFields)
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
				lim.Relay, lim.RelayBytes = nil, nil
				continue
			}
			lim.Relay, lim.RelayBytes = l.relayLimits(p.val, what)
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
	for _, p := range l.pairs(n, what) {
		if !l.bucketKey(b, &burst, p, what) {
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

// bucketKey reads rate, burst or reject into b and reports false for any
// other key. burst is the burst as written, -1 until then, so that a rate
// written after it does not replace it with the rate's count.
func (l *loader) bucketKey(b *Bucket, burst *int64, p pair, what string) bool {
	switch p.key.Value {
	case "rate":
		if s, ok := l.str(p.val, what+".rate"); ok {
			count, per, err := parseRate(s)
			if err != nil {
				l.errf(p.val, "%s.rate: %v", what, err)
				break
			}
			b.Rate, b.Spec = count/per.Seconds(), strings.ReplaceAll(s, " ", "")
			if *burst < 0 {
				b.Burst = max(1, int(math.Ceil(count)))
			}
		}
	case "burst":
		*burst = l.integer(p.val, what+".burst", 1)
		b.Burst = int(*burst)
	case "reject":
		b.Reject = l.reply(p.val, scope{})
	default:
		return false
	}
	return true
}

// relayLimits reads limits.relay: the envelope bucket and the byte budget.
// Unlike other buckets every key is optional, a key left out keeping its
// default, so that tightening the envelope rate cannot silently drop the
// byte budget; `bytes: off` drops only the byte budget.
func (l *loader) relayLimits(n *yaml.Node, what string) (msgs, bytes *Bucket) {
	msgs, bytes = defaultRelay(), defaultRelayBytes()
	msgs.Pos, bytes.Pos = posOf(n), posOf(n)
	burst, byteBurst := int64(-1), int64(-1)
	var off, byteBurstKey *yaml.Node
	for _, p := range l.pairs(n, what) {
		switch p.key.Value {
		case "bytes":
			if p.val.Kind == yaml.ScalarNode && p.val.Value == "off" {
				off = p.val
				continue
			}
			s, ok := l.str(p.val, what+".bytes")
			if !ok {
				continue
			}
			size, per, err := parseByteRate(s)
			if err != nil {
				l.errf(p.val, "%s.bytes: %v", what, err)
				continue
			}
			bytes.Rate, bytes.Spec = float64(size)/per.Seconds(), strings.ReplaceAll(s, " ", "")
			if byteBurst < 0 {
				bytes.Burst = int(size)
			}
		case "bytes_burst":
			byteBurstKey = p.key
			byteBurst = l.integer(p.val, what+".bytes_burst", 1024)
			bytes.Burst = int(byteBurst)
		default:
			if !l.bucketKey(msgs, &burst, p, what) {
				l.unknown(p.key, what, relayLimitKeys)
			}
		}
	}
	bytes.Reject = msgs.Reject
	if off != nil {
		if byteBurstKey != nil {
			l.errf(byteBurstKey, "%s.bytes_burst has no effect with bytes: off", what)
		}
		return msgs, nil
	}
	return msgs, bytes
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
	per, err = parsePer(unit)
	return count, per, err
}

// parseByteRate reads SIZE/UNIT or SIZE/DURATION, SIZE as parseSize reads
// it: 512KiB/s, 1MB/s, 64KiB/100ms.
func parseByteRate(s string) (size int64, per time.Duration, err error) {
	num, unit, ok := strings.Cut(strings.ReplaceAll(s, " ", ""), "/")
	if !ok {
		return 0, 0, fmt.Errorf("want SIZE/UNIT such as 512KiB/s, 1MB/s or 64KiB/100ms, got %q", s)
	}
	size, err = parseSize(num)
	if err != nil || size <= 0 {
		return 0, 0, fmt.Errorf("the size must be a positive byte count such as 65536, 512KiB or 1MB, got %q", num)
	}
	per, err = parsePer(unit)
	return size, per, err
}

// parsePer reads the UNIT of a rate: s, m, h or a duration such as 10s.
func parsePer(unit string) (time.Duration, error) {
	written := unit
	if unit != "" && unit[0] >= 'a' && unit[0] <= 'z' {
		unit = "1" + unit
	}
	per, err := time.ParseDuration(unit)
	if err != nil || per <= 0 {
		return 0, fmt.Errorf("the unit must be s, m, h or a duration such as 10s, got %q", written)
	}
	return per, nil
}

// sizeString writes a byte count in the largest binary unit that divides
// it, as a user would write it in the file.
func sizeString(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return strconv.FormatInt(n, 10)
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
			if ev == EventMessage {
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
	if b := lim.RelayBytes; b != nil {
		parts = append(parts, fmt.Sprintf("relay bytes %s burst %s", b.Spec, sizeString(int64(b.Burst))))
	}
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
