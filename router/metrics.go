package router

// Prometheus metrics (metrics: in rtcio.yaml). Why they look the way they
// do:
//
//   - Bounded cardinality. No label ever carries a room name, a socket id
//     or anything else a client chose: events are labelled only by names
//     that have a rule (every other name counts as "other"), rules by their
//     name (or event and ordinal), disconnect reasons by the library's
//     fixed set. A client sending 10k made-up event names or joining 10k
//     rooms adds no series.
//   - Nothing on the hot path allocates or looks up a label. Every child
//     series a message may touch is resolved ahead: the relay's when the
//     router is built, a rule set's when it is loaded (ruleMetrics), so a
//     relayed message costs a few atomic adds.
//   - Whatever the runtime already knows (sockets, rooms, suspended
//     sessions, the transport's totals) is read at scrape time by a
//     collector instead of being counted twice.
//   - Every Router has its own registry, so several routers in one process
//     (tests, embedding) never clash.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/pprof"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/rtcio/rtcio-router/rules"
)

// Label values that are not names from the rules file.
const (
	labelOther = "other" // an event without a rule, an unknown disconnect reason
)

// Relay drop reasons, the values of rtcio_relay_dropped_total's reason.
const (
	dropBadEnvelope = "bad_envelope" // not an object, or no usable target
	dropNoTarget    = "no_target"    // the target is not a connected socket
	dropNotInRoom   = "not_in_room"  // relay.shared_room_only and no shared room
	dropRateLimit   = "rate_limit"   // limits.relay
	dropCongested   = "congested"    // the target's outgoing backlog is over half full
)

var relayDropReasons = []string{dropBadEnvelope, dropNoTarget, dropNotInRoom, dropRateLimit, dropCongested}

// disconnectReasons are socket.io's disconnect reasons, the only values of
// rtcio_disconnects_total's reason besides "other".
var disconnectReasons = []string{
	"transport close", "transport error", "ping timeout", "parse error", "forced close",
	"server namespace disconnect", "client namespace disconnect", "server shutting down", "forced server close",
}

// ruleLabels are the labels of every per-rule series.
var ruleLabels = []string{"rule", "event"}

// metrics are a Router's collectors. A nil *metrics (metrics.enabled:
// false) counts nothing: every method checks.
type metrics struct {
	reg *prometheus.Registry

	handshakes, connects, recoveries prometheus.Counter
	refusedAuth, refusedDraining     atomic.Uint64 // with sio's, read at scrape
	floodRateLimit                   atomic.Uint64 // limits.flood disconnects
	disconnects                      map[string]prometheus.Counter

	received                  *prometheus.CounterVec
	receivedRelay, recvOther  prometheus.Counter
	evaluated, dropped        *prometheus.CounterVec
	rejected, failed, limited *prometheus.CounterVec
	duration                  *prometheus.HistogramVec
	// rules are the series of the rule set in force (ruleMetrics).
	rules atomic.Pointer[ruleMetrics]

	relayForwarded, relayBytes prometheus.Counter
	relayDropped               map[string]prometheus.Counter

	reloadOK, reloadFailed     prometheus.Counter
	lastReloadOK, lastReloadTS prometheus.Gauge
	configInfo                 *prometheus.GaugeVec
	configRules                prometheus.Gauge

	// Cluster mode only (instrumentCluster).
	redisDuration *prometheus.HistogramVec
	busIn, busOut prometheus.Counter
}

// newMetrics builds r's collectors, or returns nil when set turns them off.
func newMetrics(r *Router, set *rules.Set, version string) *metrics {
	if !set.Metrics.Enabled {
		return nil
	}
	reg := prometheus.NewRegistry()
	f := factory{reg}
	m := &metrics{reg: reg}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	m.handshakes = f.counter("rtcio_handshakes_total", "engine.io handshakes begun (requests opening a session, polling or WebSocket).")
	m.connects = f.counter("rtcio_connects_total", "Sockets connected (admitted by auth:), not counting recoveries.")
	m.recoveries = f.counter("rtcio_recoveries_total", "Suspended sessions recovered by their client within server.recovery.")
	disc := f.counterVec("rtcio_disconnects_total", "Sockets disconnected, by socket.io's reason.", "reason")
	m.disconnects = map[string]prometheus.Counter{}
	for _, reason := range append(disconnectReasons, labelOther) {
		m.disconnects[reason] = disc.WithLabelValues(reason)
	}

	m.received = f.counterVec("rtcio_events_received_total", `Events received from clients, by event: only names with a rule, "#rtcio:message", and "other" for every other name.`, "event")
	m.receivedRelay = m.received.WithLabelValues(rules.EventMessage)
	m.recvOther = m.received.WithLabelValues(labelOther)
	m.evaluated = f.counterVec("rtcio_rule_evaluations_total", "Times a rule ran (its validate checks at least).", ruleLabels...)
	m.dropped = f.counterVec("rtcio_rule_validation_drops_total", "Times a rule stopped on a failed validate check (or a refused join) without a reject.", ruleLabels...)
	m.rejected = f.counterVec("rtcio_rule_rejections_total", "Times a rule stopped on a failed validate check (or a refused join) and answered with its reject.", ruleLabels...)
	m.failed = f.counterVec("rtcio_rule_failures_total", "Times a rule stopped on a run-time error (an expression that failed, a bad room name).", ruleLabels...)
	m.limited = f.counterVec("rtcio_rule_rate_limited_total", "Events of the rule's event dropped by limits.all or limits.events before any rule ran (counted for each rule of the event).", ruleLabels...)
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "rtcio_rule_duration_seconds", Help: "Time one rule takes to run for one event, under the event lock.",
		Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 5e-3, .025, .1},
	}, ruleLabels)
	reg.MustRegister(m.duration)

	m.relayForwarded = f.counter("rtcio_relay_forwarded_total", "#rtcio:message envelopes forwarded to their target.")
	m.relayBytes = f.counter("rtcio_relay_forwarded_bytes_total", "Bytes of the envelopes forwarded (as the sender wrote them).")
	drops := f.counterVec("rtcio_relay_dropped_total", "#rtcio:message envelopes dropped, by reason: bad_envelope, no_target, not_in_room, rate_limit, congested.", "reason")
	m.relayDropped = map[string]prometheus.Counter{}
	for _, reason := range relayDropReasons {
		m.relayDropped[reason] = drops.WithLabelValues(reason)
	}

	reloads := f.counterVec("rtcio_reloads_total", "Reloads of the rules file, by outcome: success or failure.", "outcome")
	m.reloadOK, m.reloadFailed = reloads.WithLabelValues("success"), reloads.WithLabelValues("failure")
	m.lastReloadOK = f.gauge("rtcio_config_last_reload_successful", "1 if the last load of the rules file succeeded, else 0 (the previous rules keep running).")
	m.lastReloadTS = f.gauge("rtcio_config_last_reload_success_timestamp_seconds", "When the rules in force were loaded, Unix time.")
	m.configInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rtcio_config_info", Help: "The rules in force: always 1; file and the SHA-256 of its content as labels."}, []string{"file", "sha256"})
	reg.MustRegister(m.configInfo)
	m.configRules = f.gauge("rtcio_config_rules", "Rules in the rules file in force.")
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rtcio_build_info", Help: "The running binary: always 1; version and Go version as labels."}, []string{"version", "goversion"})
	reg.MustRegister(build)
	build.WithLabelValues(buildVersion(version), runtime.Version()).Set(1)

	reg.MustRegister(&scrapeCollector{r: r, m: m})
	return m
}

// buildVersion is the version to report: the caller's, else the module's.
func buildVersion(v string) string {
	if v != "" {
		return v
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}

// factory registers collectors as it makes them.
type factory struct{ reg *prometheus.Registry }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	f.reg.MustRegister(g)
	return g
}

// ruleMetrics are the series of one rule set, resolved when it is loaded.
// prev is the set it replaced: an event that took its snapshot of the
// rules just before a reload still finds its rules' series.
type ruleMetrics struct {
	set    *rules.Set
	prev   *ruleMetrics
	events map[string]prometheus.Counter
	rules  map[*rules.Rule]*ruleSeries
}

// ruleSeries are one rule's children.
type ruleSeries struct {
	evaluated, dropped, rejected, failed, limited prometheus.Counter
	duration                                      prometheus.Observer
}

// ruleNames name each rule in its series: its name when it has one, else its
// event and its ordinal among that event's unnamed rules ("join-room#1"),
// which stays the same when lines elsewhere in the file move.
func ruleNames(set *rules.Set) map[*rules.Rule]string {
	out := make(map[*rules.Rule]string, len(set.Rules))
	seen := map[string]int{}
	for _, rule := range set.Rules {
		if rule.Name != rule.Event {
			out[rule] = rule.Name
			continue
		}
		seen[rule.Event]++
		out[rule] = rule.Event + "#" + strconv.Itoa(seen[rule.Event])
	}
	return out
}

// loadRules resolves the series of set and makes it the one in force. A
// rule that keeps its label keeps its series (and counts); the series of
// rules and events that are gone are deleted. Called with the reload lock
// held, so never concurrently.
func (m *metrics) loadRules(set *rules.Set, file string, sum []byte) {
	if m == nil {
		return
	}
	rm := &ruleMetrics{set: set, events: map[string]prometheus.Counter{}, rules: map[*rules.Rule]*ruleSeries{}}
	keepRules := map[[2]string]bool{}
	for rule, label := range ruleNames(set) {
		lv := []string{label, rule.Event}
		keepRules[[2]string{label, rule.Event}] = true
		rm.rules[rule] = &ruleSeries{
			evaluated: m.evaluated.WithLabelValues(lv...), dropped: m.dropped.WithLabelValues(lv...),
			rejected: m.rejected.WithLabelValues(lv...), failed: m.failed.WithLabelValues(lv...),
			limited: m.limited.WithLabelValues(lv...), duration: m.duration.WithLabelValues(lv...),
		}
		if !isHook(rule.Event) {
			rm.events[rule.Event] = m.received.WithLabelValues(rule.Event)
		}
	}
	if old := m.rules.Load(); old != nil {
		for rule, label := range ruleNames(old.set) {
			if keepRules[[2]string{label, rule.Event}] {
				continue
			}
			for _, v := range []interface{ DeleteLabelValues(...string) bool }{m.evaluated, m.dropped, m.rejected, m.failed, m.limited, m.duration} {
				v.DeleteLabelValues(label, rule.Event)
			}
		}
		for ev := range old.events {
			if _, ok := rm.events[ev]; !ok {
				m.received.DeleteLabelValues(ev)
			}
		}
		old.prev = nil // one generation back is enough
		rm.prev = old
	}
	m.rules.Store(rm)
	m.configInfo.Reset()
	m.configInfo.WithLabelValues(file, hex.EncodeToString(sum)).Set(1)
	m.configRules.Set(float64(set.Len()))
	m.lastReloadOK.Set(1)
	m.lastReloadTS.Set(float64(time.Now().UnixNano()) / 1e9)
}

func isHook(event string) bool { return event == rules.HookConnect || event == rules.HookDisconnecting }

// forSet returns the series of set, or nil if set is older than the one
// it replaced (an event that outlived two reloads: not counted).
func (m *metrics) forSet(set *rules.Set) *ruleMetrics {
	rm := m.rules.Load()
	if rm != nil && rm.set != set {
		rm = rm.prev
	}
	if rm == nil || rm.set != set {
		return nil
	}
	return rm
}

// reloadRejected counts a rejected reload.
func (m *metrics) reloadRejected() {
	if m == nil {
		return
	}
	m.reloadFailed.Inc()
	m.lastReloadOK.Set(0)
}

// reloaded counts a reload that went through.
func (m *metrics) reloaded() {
	if m != nil {
		m.reloadOK.Inc()
	}
}

// event counts one event received from a client.
func (m *metrics) event(set *rules.Set, name string) {
	if m == nil {
		return
	}
	if name == rules.EventMessage {
		m.receivedRelay.Inc()
		return
	}
	if rm := m.forSet(set); rm != nil {
		if c, ok := rm.events[name]; ok {
			c.Inc()
			return
		}
	}
	m.recvOther.Inc()
}

// rateLimited counts an event a rate limit dropped, for each of its rules
// (the relay's as a relay drop).
func (m *metrics) rateLimited(set *rules.Set, event string) {
	if m == nil {
		return
	}
	if event == rules.EventMessage {
		m.relayDropped[dropRateLimit].Inc()
		return
	}
	if rm := m.forSet(set); rm != nil {
		for _, rule := range set.For(event) {
			if s := rm.rules[rule]; s != nil {
				s.limited.Inc()
			}
		}
	}
}

// relayDrop counts an envelope dropped for reason.
func (m *metrics) relayDrop(reason string) {
	if m != nil {
		m.relayDropped[reason].Inc()
	}
}

// relayed counts an envelope forwarded, of size bytes.
func (m *metrics) relayed(size int) {
	if m != nil {
		m.relayForwarded.Inc()
		m.relayBytes.Add(float64(size))
	}
}

// disconnect counts a socket's disconnect.
func (m *metrics) disconnect(reason string) {
	if m == nil {
		return
	}
	c, ok := m.disconnects[reason]
	if !ok {
		c = m.disconnects[labelOther]
	}
	c.Inc()
}

// handshake counts an engine.io handshake begun; draining says it is
// refused for that.
func (m *metrics) handshake(draining bool) {
	if m == nil {
		return
	}
	m.handshakes.Inc()
	if draining {
		m.refusedDraining.Add(1)
	}
}

// admitted counts a handshake auth: decided on.
func (m *metrics) admitted(refused bool) {
	if m == nil {
		return
	}
	if refused {
		m.refusedAuth.Add(1)
	}
}

// connected counts a new socket.
func (m *metrics) connected() {
	if m != nil {
		m.connects.Inc()
	}
}

// recovered counts a recovered session.
func (m *metrics) recovered() {
	if m != nil {
		m.recoveries.Inc()
	}
}

// flooded counts a socket disconnected by limits.flood.
func (m *metrics) flooded() {
	if m != nil {
		m.floodRateLimit.Add(1)
	}
}

// ruleOutcome is how one rule's run ended, for its series.
type ruleOutcome uint8

const (
	outcomeDone     ruleOutcome = iota // ran to the end
	outcomeDropped                     // a validate check (or a join) stopped it, silently
	outcomeRejected                    // the same, answered with a reject
	outcomeFailed                      // a run-time error stopped it
)

// ruleRan records one run of a rule that began at start.
func (s *ruleSeries) ruleRan(out ruleOutcome, start time.Time) {
	s.evaluated.Inc()
	s.duration.Observe(time.Since(start).Seconds())
	switch out {
	case outcomeDropped:
		s.dropped.Inc()
	case outcomeRejected:
		s.rejected.Inc()
	case outcomeFailed:
		s.failed.Inc()
	}
}

// scrapeCollector reports, at scrape time, what the router and the
// transport already keep: nothing is counted twice on the hot path.
type scrapeCollector struct {
	r *Router
	m *metrics
}

var (
	descSockets   = prometheus.NewDesc("rtcio_sockets", "Sockets connected to this node, by transport (polling, websocket); suspended ones are not included.", []string{"transport"}, nil)
	descSuspended = prometheus.NewDesc("rtcio_sockets_suspended", "Sessions suspended for connection state recovery (server.recovery), waiting for their client.", nil, nil)
	descRooms     = prometheus.NewDesc("rtcio_rooms", "Rooms with at least one member on this node.", nil, nil)
	descRefused   = prometheus.NewDesc("rtcio_connects_refused_total", "Connections refused, by reason: auth (auth: refused the handshake), origin (server.cors_origins), draining (shutting down), busy (too many handshakes at once).", []string{"reason"}, nil)
	descPackets   = prometheus.NewDesc("rtcio_outgoing_packets_total", "engine.io packets handed to a transport to be written (events, acks, pings).", nil, nil)
	descBytes     = prometheus.NewDesc("rtcio_outgoing_bytes_total", "Payload bytes of those packets.", nil, nil)
	descSlow      = prometheus.NewDesc("rtcio_slow_consumers_disconnected_total", "Connections dropped because more than server.max_outgoing packets (or 8 MiB) waited to be written to them.", nil, nil)
	descFloods    = prometheus.NewDesc("rtcio_floods_disconnected_total", "Sockets disconnected for flooding, by limit: max_pending (server.max_pending events queued) or rate_limit (limits.flood).", []string{"limit"}, nil)
	descNodes     = prometheus.NewDesc("rtcio_cluster_nodes", "Live nodes in the cluster, as of this node's last check (every 2 s).", nil, nil)
	descRedisUp   = prometheus.NewDesc("rtcio_redis_up", "1 if this node reached Redis at its last check, else 0.", nil, nil)
)

// Describe sends nothing: the collector is unchecked, since the cluster
// metrics exist only in cluster mode.
func (c *scrapeCollector) Describe(chan<- *prometheus.Desc) {}

// Collect reads the counts.
func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.r
	byTransport := map[string]int{"polling": 0, "websocket": 0}
	r.st.mu.RLock()
	suspended := r.suspendedCount()
	rooms := map[string]struct{}{}
	nrooms := -1
	if mem, ok := r.st.registry.(*memRegistry); ok {
		nrooms = len(mem.rooms)
	}
	r.st.each(func(cn *conn) {
		if cn.s == nil || cn.suspended != nil {
			return
		}
		if t := cn.s.Transport(); t != "" {
			byTransport[t]++
		}
		if nrooms < 0 {
			for _, name := range cn.rooms {
				rooms[name] = struct{}{}
			}
		}
	})
	r.st.mu.RUnlock()
	if nrooms < 0 {
		nrooms = len(rooms)
	}
	for t, n := range byTransport {
		ch <- prometheus.MustNewConstMetric(descSockets, prometheus.GaugeValue, float64(n), t)
	}
	ch <- prometheus.MustNewConstMetric(descSuspended, prometheus.GaugeValue, float64(suspended))
	ch <- prometheus.MustNewConstMetric(descRooms, prometheus.GaugeValue, float64(nrooms))
	st := r.tr.Stats()
	for reason, n := range map[string]uint64{"auth": c.m.refusedAuth.Load(), "draining": c.m.refusedDraining.Load(), "origin": st.RefusedOrigin, "busy": st.RefusedBusy} {
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(n), reason)
	}
	ch <- prometheus.MustNewConstMetric(descPackets, prometheus.CounterValue, float64(st.PacketsSent))
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(st.BytesSent))
	ch <- prometheus.MustNewConstMetric(descSlow, prometheus.CounterValue, float64(st.SlowConsumers))
	ch <- prometheus.MustNewConstMetric(descFloods, prometheus.CounterValue, float64(st.Floods), "max_pending")
	ch <- prometheus.MustNewConstMetric(descFloods, prometheus.CounterValue, float64(c.m.floodRateLimit.Load()), "rate_limit")
	if cl := r.cl; cl != nil {
		ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(cl.nodes.Load()))
		up := 0.0
		if cl.up.Load() {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descRedisUp, prometheus.GaugeValue, up)
	}
}

// instrumentCluster adds the cluster's metrics and hooks the Redis client
// so that every command's round trip is timed.
func (m *metrics) instrumentCluster(rdb *redis.Client) {
	if m == nil {
		return
	}
	m.redisDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "rtcio_redis_command_duration_seconds", Help: "Round trip of one Redis command or pipeline, by kind (command, pipeline), errors included.",
		Buckets: []float64{1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, .01, .025, .1, .5, 1},
	}, []string{"kind"})
	bus := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rtcio_cluster_messages_total", Help: "Pub/sub deliveries between nodes, by direction: out (published), in (received from other nodes or emitters)."}, []string{"direction"})
	m.reg.MustRegister(m.redisDuration, bus)
	m.busIn, m.busOut = bus.WithLabelValues("in"), bus.WithLabelValues("out")
	rdb.AddHook(redisTimer{cmd: m.redisDuration.WithLabelValues("command"), pipe: m.redisDuration.WithLabelValues("pipeline")})
}

// redisTimer is the go-redis hook behind rtcio_redis_command_duration_seconds.
type redisTimer struct{ cmd, pipe prometheus.Observer }

func (h redisTimer) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h redisTimer) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, c redis.Cmder) error {
		start := time.Now()
		err := next(ctx, c)
		h.cmd.Observe(time.Since(start).Seconds())
		return err
	}
}

func (h redisTimer) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.pipe.Observe(time.Since(start).Seconds())
		return err
	}
}

// busMessage counts a pub/sub delivery (in: received).
func (m *metrics) busMessage(in bool) {
	if m == nil || m.busIn == nil {
		return
	}
	if in {
		m.busIn.Inc()
	} else {
		m.busOut.Inc()
	}
}

// handler serves the metrics in Prometheus' text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// MetricsHandler returns the handler for metrics.listen: the metrics at
// metrics.path and, with metrics.pprof, Go's profiles under /debug/pprof/;
// nil when metrics are off or metrics.listen is not set. The caller
// listens (the binary does it for metrics.listen): why the router does
// not, it never opens sockets of its own (see New).
func (r *Router) MetricsHandler() http.Handler {
	ms := r.Rules().Metrics
	if r.m == nil || ms.Listen == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle(ms.Path, r.m.handler())
	if ms.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// configSum is the digest rtcio_config_info reports.
func configSum(src []byte) []byte {
	s := sha256.Sum256(src)
	return s[:]
}
