package load

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	rtcio "github.com/rtcio/rtcio-router"
	"github.com/rtcio/rtcio-router/bench/sio"
	"github.com/rtcio/rtcio-router/router"
)

// serve runs h on 127.0.0.1 for the test and returns its base URL.
func serve(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// echoTarget serves a fresh echo server; its pid is this process.
func echoTarget(t testing.TB) Target {
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", sio.NewEcho())
	return Target{URL: serve(t, mux), PID: os.Getpid()}
}

// routerTarget serves the built-in rules on an in-process router.
func routerTarget(t testing.TB) Target {
	t.Helper()
	rt, err := router.New(router.Options{RulesFile: rtcio.DefaultRulesName, Source: BenchRules(rtcio.DefaultRules),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: routerLogLevel()}))})
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, rt)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rt.Close(ctx)
	})
	return Target{URL: url, PID: os.Getpid()}
}

var short = Timing{Warmup: 100 * time.Millisecond, Measure: 300 * time.Millisecond}

func value(t *testing.T, figs []Figure, suffix string) float64 {
	t.Helper()
	for _, f := range figs {
		if strings.HasSuffix(f.Key, suffix) {
			return f.Value
		}
	}
	t.Fatalf("no figure ending %q in %+v", suffix, figs)
	return 0
}

// TestScenarios runs every scenario, briefly, against the echo server and
// the real router: each must complete with every expected event and give
// plausible figures.
func TestScenarios(t *testing.T) {
	for _, srv := range []struct {
		name   string
		target func(testing.TB) Target
	}{{"echo", echoTarget}, {"router", routerTarget}} {
		t.Run(srv.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			tg := srv.target(t)
			figs, err := JoinStorm(ctx, tg, 10, 4)
			if err != nil {
				t.Fatal(err)
			}
			if ms := value(t, figs, "completion"); ms <= 0 || ms > 20000 {
				t.Errorf("join storm took %v ms", ms)
			}
			for _, env := range []Envelope{Candidate, SDP} {
				figs, err = Relay(ctx, tg, 2, env, 400, short, nil, 0)
				if err != nil {
					t.Fatal(err)
				}
				if p50, p99 := value(t, figs, "p50"), value(t, figs, "p99"); p50 <= 0 || p99 < p50 {
					t.Errorf("%s: p50 %v µs, p99 %v µs", env.Name, p50, p99)
				}
			}
			figs, err = RelayMax(ctx, tg, 2, 4, Candidate, short)
			if err != nil {
				t.Fatal(err)
			}
			if v := value(t, figs, "throughput"); v < 100 {
				t.Errorf("relay max: %v msgs/s", v)
			}
			figs, err = FanOut(ctx, tg, 2, 4, 600, short)
			if err != nil {
				t.Fatal(err)
			}
			if v := value(t, figs, "p50"); v <= 0 {
				t.Errorf("fan-out p50 %v µs", v)
			}
			figs, err = FanOutMax(ctx, tg, 2, 4, 2, short)
			if err != nil {
				t.Fatal(err)
			}
			if v := value(t, figs, "throughput"); v < 100 {
				t.Errorf("fan-out max: %v deliveries/s", v)
			}
			figs, err = Idle(ctx, tg, 20, 10*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			value(t, figs, "RSS per socket")
		})
	}
}

// TestScaleSpreadsSources: the scale scenario's sockets come from every
// source address it is given, round robin (the server sees them), and its
// relay among them completes; the idle scenario's release figures come
// with the RSS before and after.
func TestScaleSpreadsSources(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var mu sync.Mutex
	seen := map[string]int{}
	echo := sio.NewEcho()
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			mu.Lock()
			seen[host]++
			mu.Unlock()
		}
		echo.ServeHTTP(w, r)
	}))
	tg := Target{URL: serve(t, mux), PID: os.Getpid(), Sources: []string{"127.0.0.2", "127.0.0.3"}}
	figs, err := Scale(ctx, tg, 40, 2, 400, 10*time.Millisecond, short)
	if err != nil {
		t.Fatal(err)
	}
	if p99 := value(t, figs, "p99"); p99 <= 0 {
		t.Errorf("scale relay p99 %v µs", p99)
	}
	mu.Lock()
	defer mu.Unlock()
	// 40 idle sockets and 4 of the pairs, alternating the two addresses.
	if seen["127.0.0.2"] != 22 || seen["127.0.0.3"] != 22 || len(seen) != 2 {
		t.Errorf("connections by source address: %v, want 22 from each of 127.0.0.2 and .3", seen)
	}
	figs, err = IdleRelease(ctx, echoTarget(t), 20, 10*time.Millisecond, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if before, after := value(t, figs, "RSS before the sockets opened"), value(t, figs, "RSS after every connection closed, +2s"); before <= 0 || after <= 0 {
		t.Errorf("RSS before %v MB, after %v MB", before, after)
	}
}

// TestJoinStormNeedsEveryEvent: a server that never sends init-offer must
// make the join storm fail, not report a time.
func TestJoinStormNeedsEveryEvent(t *testing.T) {
	p := newPresence(1, 2)
	p.see(sio.Event("user-connected", []byte(`{"id":"a"}`)))
	p.see(sio.Event("user-connected", []byte(`{"id":"b"}`)))
	if err := p.wait(context.Background(), 50*time.Millisecond); err == nil || !strings.Contains(err.Error(), "init-offer 0/1") {
		t.Fatalf("wait = %v, want init-offer 0/1 missing", err)
	}
	p.see(sio.Event("#rtcio:init-offer", []byte(`{"source":"b"}`)))
	if err := p.wait(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestEnvelopes: the relayed payloads are valid JSON of the advertised
// sizes, with one stamp each.
func TestEnvelopes(t *testing.T) {
	for _, env := range []struct {
		e        Envelope
		min, max int
	}{{Candidate, 180, 260}, {SDP, 3900, 4200}} {
		if !json.Valid(env.e.Data) {
			t.Errorf("%s: invalid JSON", env.e.Name)
		}
		if n := len(env.e.Data); n < env.min || n > env.max {
			t.Errorf("%s: %d bytes", env.e.Name, n)
		}
		if strings.Count(string(env.e.Data), sio.StampKey) != 1 {
			t.Errorf("%s: want exactly one %s", env.e.Name, sio.StampKey)
		}
	}
}

func TestPercentile(t *testing.T) {
	s := make([]int64, 1000)
	for i := range s {
		s[i] = int64(i + 1)
	}
	for _, c := range []struct {
		q    float64
		want int64
	}{{0.5, 500}, {0.99, 990}, {0.999, 999}, {1, 1000}, {0, 1}} {
		if got := Percentile(s, c.q); got != c.want {
			t.Errorf("Percentile(%v) = %d, want %d", c.q, got, c.want)
		}
	}
	if Percentile(nil, 0.5) != 0 {
		t.Error("empty: want 0")
	}
}

func TestProc(t *testing.T) {
	rss, err := RSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Fatalf("RSS = %d, %v", rss, err)
	}
	end := time.Now().Add(30 * time.Millisecond)
	for time.Now().Before(end) {
	}
	cpu, err := CPUTime(os.Getpid())
	if err != nil || cpu <= 0 {
		t.Fatalf("CPUTime = %v, %v", cpu, err)
	}
}

// routerLogLevel is warn, or debug with RTCIO_BENCH_DEBUG=1 to see why the
// router dropped an envelope.
func routerLogLevel() slog.Level {
	if os.Getenv("RTCIO_BENCH_DEBUG") == "1" {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}
