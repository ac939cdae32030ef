package load

import (
	"context"
	"strings"
	"testing"
	"time"

	rtcio "github.com/rtcio/rtcio-router"
)

// recoveryRules are the benchmark rules with a recovery window that
// outlasts each scenario.
func recoveryRules(t *testing.T) []byte {
	t.Helper()
	src := string(BenchRules(rtcio.DefaultRules))
	const at = "  ping_timeout: 20s\n"
	if !strings.Contains(src, at) {
		t.Fatalf("the built-in rules no longer contain %q", at)
	}
	return []byte(strings.Replace(src, at, at+"  recovery: 1m\n", 1))
}

// TestRecoveryScenarios runs bench/recovery's scenarios, briefly, on two
// in-process nodes with recovery on: sessions suspended in Redis cost
// memory and keep missed events, and every session of a node that stops
// (Drain and Close, what SIGTERM does) is recovered on the other node.
func TestRecoveryScenarios(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tg, _ := clusterOf(t, recoveryRules(t))
	figs, err := PairsMemory(ctx, tg, 8, true)
	if err != nil {
		t.Fatal(err)
	}
	if v := value(t, figs, "used_memory per socket"); v <= 0 {
		t.Errorf("connected: %v B per socket", v)
	}
	figs, err = SuspendedMemory(ctx, tg, 8, 20)
	if err != nil {
		t.Fatal(err)
	}
	if v := value(t, figs, "MEMORY USAGE of a suspended session's keys"); v <= 0 {
		t.Errorf("suspended session: %v B", v)
	}
	if v := value(t, figs, "kept (20 per session)"); v <= 0 {
		t.Errorf("missed events: %v B each", v)
	}

	tg, rts := clusterOf(t, recoveryRules(t))
	figs, err = RecoverElsewhere(ctx, tg, 8, "Close", func() error {
		rts[0].Drain()
		return rts[0].Close(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := value(t, figs, "close to recovered, max"); v <= 0 {
		t.Errorf("recovery: %v ms", v)
	}

	// Without recovery the nodes send no session id: the scenario says so
	// rather than measuring something else.
	if _, err := RecoverElsewhere(ctx, clusterTarget(t), 2, "Close", func() error { return nil }); err == nil || !strings.Contains(err.Error(), "server.recovery") {
		t.Errorf("without recovery: %v", err)
	}
}
