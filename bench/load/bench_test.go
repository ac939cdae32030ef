package load

import (
	"context"
	"testing"
	"time"
)

// benchRelay relays b.N envelopes (pings and pongs) through tg with 4 pairs
// of 16 in flight each, generator and server in this process. Against the
// router it is the profile target for the relay's hot path:
//
//	go test -run '^$' -bench RelayRouter -benchtime 200000x -cpuprofile cpu.out ./bench/load
func benchRelay(b *testing.B, tg Target, env Envelope) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	msgs, stop, err := relayLoop(ctx, tg, 4, 16, env)
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	b.ResetTimer()
	start, m0 := time.Now(), msgs()
	last, lastAt := m0, start
	for m := m0; m-m0 < int64(b.N); m = msgs() {
		if m != last {
			last, lastAt = m, time.Now()
		} else if time.Since(lastAt) > 5*time.Second {
			b.Fatalf("relay stalled after %d of %d messages: in-flight envelopes were lost", m-m0, b.N)
		}
		time.Sleep(200 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(msgs()-m0)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkRelayRouter: 200 B candidates through an in-process router with
// the built-in rules.
func BenchmarkRelayRouter(b *testing.B) { benchRelay(b, routerTarget(b), Candidate) }

// BenchmarkRelayRouterSDP: 4 KB offers, where payload size dominates.
func BenchmarkRelayRouterSDP(b *testing.B) { benchRelay(b, routerTarget(b), SDP) }

// BenchmarkRelayEcho is the same loop against the echo server: the
// generator's own cost per message, which the router figures include.
func BenchmarkRelayEcho(b *testing.B) { benchRelay(b, echoTarget(b), Candidate) }

// BenchmarkJoinStormRouter: 25 rooms of 4 join an in-process router at
// once, per storm.
func BenchmarkJoinStormRouter(b *testing.B) {
	tg := routerTarget(b)
	for b.Loop() {
		if _, err := JoinStorm(context.Background(), tg, 25, 4); err != nil {
			b.Fatal(err)
		}
	}
}
