package load

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	rtcio "github.com/rtcio/rtcio-router"
	"github.com/rtcio/rtcio-router/internal/redistest"
	"github.com/rtcio/rtcio-router/router"
)

// clusterTarget serves two in-process router nodes of the built-in rules
// on a private Redis.
func clusterTarget(t testing.TB) Target {
	t.Helper()
	tg, _ := clusterOf(t, BenchRules(rtcio.DefaultRules))
	return tg
}

// clusterOf serves two in-process router nodes of the rules src on a
// private Redis, and returns them with the target.
func clusterOf(t testing.TB, src []byte) (Target, []*router.Router) {
	t.Helper()
	rs := redistest.Start(t)
	tg := Target{PID: os.Getpid(), Redis: rs.Addr}
	var rts []*router.Router
	for range 2 {
		rt, err := router.New(router.Options{RulesFile: rtcio.DefaultRulesName, Source: src, Redis: rs.URL(),
			Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: routerLogLevel()}))})
		if err != nil {
			t.Fatal(err)
		}
		tg.Nodes = append(tg.Nodes, serve(t, rt))
		rts = append(rts, rt)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = rt.Close(ctx)
		})
	}
	tg.URL = tg.Nodes[0]
	return tg, rts
}

// TestClusterScenarios runs the cluster suite's scenarios, briefly, on two
// nodes: sockets spread over them, Redis's commands counted, and the
// memory scenario's keys.
func TestClusterScenarios(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tg := clusterTarget(t)
	figs, err := JoinStorm(ctx, tg, 10, 4)
	if err != nil {
		t.Fatal(err)
	}
	value(t, figs, "completion")
	if v := value(t, figs, "Redis commands per socket"); v < 5 {
		t.Errorf("join storm: %v Redis commands per socket", v)
	}
	figs, err = Relay(ctx, tg, 2, Candidate, 400, short, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	// One round trip, relay.lua: EVALSHA and its EXISTS, ZINTERCARD and
	// PUBLISH as Redis counts commands; the nodes' heartbeats add a few.
	// The meter is read right after the last send, so on a loaded machine
	// the scripts of the last few relays in flight are not counted yet
	// (3.975 seen: 10 commands of 1,600).
	if v := value(t, figs, "Redis commands per msg"); v < 3.9 || v > 4.5 {
		t.Errorf("relay across nodes: %v Redis commands per msg, want 4", v)
	}
	one := tg
	one.Nodes = tg.Nodes[:1]
	figs, err = Relay(ctx, one, 2, Candidate, 400, short, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if v := value(t, figs, "Redis commands per msg"); v > 0.5 {
		t.Errorf("relay on one node: %v Redis commands per msg, want 0", v)
	}
	figs, err = RelayMax(ctx, tg, 2, 4, Candidate, short)
	if err != nil {
		t.Fatal(err)
	}
	if v := value(t, figs, "throughput"); v < 100 {
		t.Errorf("relay max: %v msgs/s", v)
	}
	// A fresh cluster, as loadgen gives it: the sockets of the scenarios
	// above may still be leaving Redis.
	figs, kinds, err := RedisMemory(ctx, clusterTarget(t), 40)
	if err != nil {
		t.Fatal(err)
	}
	if v := value(t, figs, "used_memory per 10k sockets"); v <= 0 {
		t.Errorf("used_memory per 10k sockets: %v MiB", v)
	}
	if v := value(t, figs, `"room" keys per room`); v != 1 {
		t.Errorf("room keys per room: %v (%+v)", v, kinds)
	}
}
