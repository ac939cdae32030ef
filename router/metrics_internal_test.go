package router

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/rules"
)

// TestMetricsHotPathAllocs: what the relay and the dispatcher do for
// metrics per message allocates nothing: every series is resolved ahead.
func TestMetricsHotPathAllocs(t *testing.T) {
	set := mustParse(t, "rules:\n  - event: chat\n    do: [ { ack: 1 } ]\n")
	r := &Router{st: newState()}
	r.rules.Store(set)
	m := newMetrics(r, set, "test")
	m.loadRules(set, "t.yaml", configSum(nil))
	rule := set.For("chat")[0]
	allocs := testing.AllocsPerRun(1000, func() {
		// The relay: received, then forwarded or dropped.
		m.event(set, rules.EventMessage)
		m.relayed(300)
		m.relayDrop(dropCongested)
		// An event with a rule, and the rule's run.
		m.event(set, "chat")
		m.event(set, "no-rule")
		if rm := m.forSet(set); rm != nil {
			rm.rules[rule].ruleRan(outcomeDone, time.Now())
		}
		m.rateLimited(set, "chat")
		m.disconnect("transport close")
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per message for metrics, want 0", allocs)
	}
	var off *metrics // metrics.enabled: false
	if a := testing.AllocsPerRun(100, func() { off.event(set, "chat"); off.relayed(1) }); a != 0 {
		t.Fatalf("disabled metrics allocate: %v", a)
	}
}

// BenchmarkRelayMetrics is what metrics add to one relayed message: the
// router's counters (received, forwarded, bytes) and the transport's two
// (packets and bytes sent), for comparison with BenchmarkRelayThroughput's
// server CPU per message, whose run-to-run noise is larger than this.
func BenchmarkRelayMetrics(b *testing.B) {
	set := mustParse(b, "rules: []\n")
	r := &Router{st: newState()}
	m := newMetrics(r, set, "bench")
	m.loadRules(set, "t.yaml", configSum(nil))
	var packets, bytes atomic.Uint64 // sio's Stats counters
	b.ReportAllocs()
	for b.Loop() {
		m.event(set, rules.EventMessage)
		m.relayed(300)
		packets.Add(1)
		bytes.Add(310)
	}
}
