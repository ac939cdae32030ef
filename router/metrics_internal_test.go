package router

import (
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
