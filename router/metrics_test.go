package router_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/jsclient"
	"github.com/rtcio/rtcio-router/router"
)

// metricsRules exercise every per-rule outcome: a silent validation drop
// (join-room), a reject and a rate limit (chat-line), a run-time failure
// (boom), and an ack that tells a test the events before it were handled.
const metricsRules = `
server:
  cors_origins: ["https://app.example.com"]
auth:
  require:
    - check: socket.auth.deny != true
      message: denied
limits:
  events:
    chat: { rate: 1/m, burst: 1 }
rules:
  - event: join-room
    validate:
      - type(data) == "map"
    do:
      - join: data.roomId
  - event: chat
    name: chat-line
    validate:
      - check: type(data) == "string"
        reject: { emit: chat-error }
    do:
      - emit: chat
        to: room
        room: socket.rooms[0]
  - event: boom
    do:
      - emit: x
        to: room
        room: data.nope
  - event: ping
    do:
      - ack: true
`

// scrape reads url's metrics as "name{labels}" -> value, labels as the
// server prints them (sorted by name).
func scrape(t testing.TB, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// waitMetric polls until the series has the value: counts that the server
// updates on its own goroutines (disconnects) land a moment after the
// client returns.
func waitMetric(t testing.TB, url, series string, want float64) {
	t.Helper()
	var got float64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = scrape(t, url)[series]; got == want {
			return
		}
	}
	t.Fatalf("%s = %v, want %v", series, got, want)
}

// TestMetricsAfterTraffic drives scripted traffic with the official client
// and checks each count exactly.
func TestMetricsAfterTraffic(t *testing.T) {
	_, url := startRouter(t, []byte(metricsRules))
	js := jsclient.Start(t)
	opts := func(extra map[string]any) map[string]any {
		o := map[string]any{"transports": []string{"websocket"}, "reconnection": false,
			"extraHeaders": map[string]any{"Origin": "https://app.example.com"}}
		for k, v := range extra {
			o[k] = v
		}
		return o
	}
	a := js.Connect("a", url, opts(nil)).WithT(t)
	b := js.Connect("b", url, opts(nil)).WithT(t)
	c := js.Connect("c", url, opts(nil)).WithT(t)
	a.WaitConnected()
	b.WaitConnected()
	c.WaitConnected()
	denied := js.Connect("denied", url, opts(map[string]any{"auth": map[string]any{"deny": true}})).WithT(t)
	denied.WaitConnectError()
	evil := js.Connect("evil", url, opts(map[string]any{"extraHeaders": map[string]any{"Origin": "https://evil.example.com"}})).WithT(t)
	evil.WaitConnectError()

	a.Emit("join-room", map[string]any{"roomId": "r1"})
	b.Emit("join-room", map[string]any{"roomId": "r1"})
	a.Emit("join-room", "not a map")                            // dropped by validation
	a.Emit("chat", 5)                                           // rejected (spends a's one token)
	a.Emit("chat", "hi")                                        // rate-limited
	a.Emit("boom", map[string]any{})                            // fails at run time
	for _, name := range []string{"nope-1", "nope-2", "nope"} { // no rule: "other"
		a.Emit(name)
	}
	a.Emit("#rtcio:message", map[string]any{"target": b.ID(), "data": 1})
	a.Emit("#rtcio:message", map[string]any{"target": b.ID(), "data": 2})
	a.Emit("#rtcio:message", map[string]any{"target": "no-such-socket", "data": 3})
	a.Emit("#rtcio:message", map[string]any{"target": c.ID(), "data": 4}) // no shared room
	a.Emit("#rtcio:message", map[string]any{"data": 5})                   // no target
	a.EmitWithAck("ping")
	b.Emit("chat", "hello") // b's own bucket: passes
	b.EmitWithAck("ping")
	a.Expect(t, "chat-error")
	b.Expect(t, "#rtcio:message", map[string]any{"source": a.ID(), "target": b.ID(), "data": 1.0})
	b.Expect(t, "#rtcio:message", map[string]any{"source": a.ID(), "target": b.ID(), "data": 2.0})
	a.Expect(t, "chat", "hello")

	m := scrape(t, url+"/metrics")
	want := map[string]float64{
		`rtcio_handshakes_total`:                                                  5,
		`rtcio_connects_total`:                                                    3,
		`rtcio_connects_refused_total{reason="auth"}`:                             1,
		`rtcio_connects_refused_total{reason="origin"}`:                           1,
		`rtcio_connects_refused_total{reason="draining"}`:                         0,
		`rtcio_sockets{transport="websocket"}`:                                    3,
		`rtcio_sockets{transport="polling"}`:                                      0,
		`rtcio_rooms`:                                                             1,
		`rtcio_events_received_total{event="join-room"}`:                          3,
		`rtcio_events_received_total{event="chat"}`:                               3,
		`rtcio_events_received_total{event="boom"}`:                               1,
		`rtcio_events_received_total{event="ping"}`:                               2,
		`rtcio_events_received_total{event="other"}`:                              3,
		`rtcio_events_received_total{event="#rtcio:message"}`:                     5,
		`rtcio_rule_evaluations_total{event="join-room",rule="join-room#1"}`:      3,
		`rtcio_rule_validation_drops_total{event="join-room",rule="join-room#1"}`: 1,
		`rtcio_rule_evaluations_total{event="chat",rule="chat-line"}`:             2,
		`rtcio_rule_rejections_total{event="chat",rule="chat-line"}`:              1,
		`rtcio_rule_validation_drops_total{event="chat",rule="chat-line"}`:        0,
		`rtcio_rule_rate_limited_total{event="chat",rule="chat-line"}`:            1,
		`rtcio_rule_failures_total{event="boom",rule="boom#1"}`:                   1,
		`rtcio_rule_failures_total{event="chat",rule="chat-line"}`:                0,
		`rtcio_rule_duration_seconds_count{event="chat",rule="chat-line"}`:        2,
		`rtcio_relay_forwarded_total`:                                             2,
		`rtcio_relay_dropped_total{reason="no_target"}`:                           1,
		`rtcio_relay_dropped_total{reason="not_in_room"}`:                         1,
		`rtcio_relay_dropped_total{reason="bad_envelope"}`:                        1,
		`rtcio_relay_dropped_total{reason="rate_limit"}`:                          0,
		`rtcio_relay_dropped_total{reason="congested"}`:                           0,
		`rtcio_reloads_total{outcome="success"}`:                                  0,
		`rtcio_config_last_reload_successful`:                                     1,
		`rtcio_config_rules`:                                                      4,
		`rtcio_slow_consumers_disconnected_total`:                                 0,
		`rtcio_floods_disconnected_total{limit="max_pending"}`:                    0,
	}
	for series, v := range want {
		if got, ok := m[series]; !ok || got != v {
			t.Errorf("%s = %v (present: %v), want %v", series, got, ok, v)
		}
	}
	// Each relayed envelope weighs what a wrote: {"target":"ID","data":N}.
	if got, want := m[`rtcio_relay_forwarded_bytes_total`], float64(2*len(`{"target":"`+b.ID()+`","data":1}`)); got != want {
		t.Errorf("rtcio_relay_forwarded_bytes_total = %v, want %v", got, want)
	}
	if m[`rtcio_outgoing_packets_total`] < 10 || m[`rtcio_outgoing_bytes_total`] < 100 {
		t.Errorf("outgoing packets %v, bytes %v: too few", m[`rtcio_outgoing_packets_total`], m[`rtcio_outgoing_bytes_total`])
	}
	for series := range m {
		if strings.Contains(series, "r1") || strings.Contains(series, a.ID()) || strings.Contains(series, "nope") {
			t.Errorf("series %s carries a room, a socket id or an unknown event name", series)
		}
	}

	c.Close()
	waitMetric(t, url+"/metrics", `rtcio_disconnects_total{reason="client namespace disconnect"}`, 1)
	waitMetric(t, url+"/metrics", `rtcio_sockets{transport="websocket"}`, 2)
}

// TestMetricsCardinality: 10k distinct room names and 10k distinct event
// names add no series.
func TestMetricsCardinality(t *testing.T) {
	src := strings.Replace(metricsRules, "server:\n", "server:\n  max_rooms_per_socket: 20000\n", 1)
	_, url := startRouter(t, []byte(src))
	before := len(scrape(t, url+"/metrics"))
	c, err := lgDial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.ws.Close()
	const n = 10000
	const batch = 500 // below server.max_pending
	for i := 0; i < n; i += batch {
		for j := i; j < i+batch; j++ {
			if err := c.emit([]byte(fmt.Sprintf(`42["join-room",{"roomId":"room-%d"}]`, j))); err != nil {
				t.Fatal(err)
			}
			if err := c.emit([]byte(fmt.Sprintf(`42["made-up-%d",{}]`, j))); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.emit([]byte(`421["ping"]`)); err != nil {
			t.Fatal(err)
		}
		for {
			msg, err := c.read()
			if err != nil {
				t.Fatal(err)
			}
			if msg == `431[true]` {
				break
			}
		}
	}
	m := scrape(t, url+"/metrics")
	if got := m[`rtcio_rooms`]; got != n {
		t.Fatalf("rtcio_rooms = %v, want %d: the rooms were not joined", got, n)
	}
	if got := m[`rtcio_events_received_total{event="other"}`]; got != n {
		t.Fatalf(`events_received{event="other"} = %v, want %d`, got, n)
	}
	// A handful of new series appear with the first event of each kind
	// (histogram buckets were there from the start); 10k would be a leak.
	if after := len(m); after > before+20 {
		t.Fatalf("%d series before the traffic, %d after: labels carry client values", before, after)
	}
}

// TestMetricsAcrossReload: a rule that keeps its name keeps its series, a
// removed rule's series are deleted, and a failed reload is counted.
func TestMetricsAcrossReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rtcio.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`
rules:
  - event: ping
    name: pinger
    do: [ { ack: 1 } ]
  - event: gone
    do: [ { ack: 1 } ]
  - event: kept
    do: [ { ack: 1 } ]
`)
	rt, err := router.New(router.Options{RulesFile: path, Logger: testLogger(), Environ: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, rt) + "/metrics"
	js := jsclient.Start(t)
	a := js.Connect("a", strings.TrimSuffix(url, "/metrics"), map[string]any{"transports": []string{"websocket"}}).WithT(t)
	a.WaitConnected()
	for _, ev := range []string{"ping", "ping", "gone", "kept"} {
		a.EmitWithAck(ev)
	}
	sum0 := configSHA(t, url)

	// pinger moves and changes, kept stays unnamed and first of its event,
	// gone goes, fresh comes.
	write(`
rules:
  - event: fresh
    do: [ { ack: 2 } ]
  - event: kept
    do: [ { ack: 2 } ]
  - event: ping
    name: pinger
    do: [ { ack: 2 } ]
`)
	if err := rt.Reload(); err != nil {
		t.Fatal(err)
	}
	a.EmitWithAck("ping")
	a.EmitWithAck("fresh")
	m := scrape(t, url)
	for series, v := range map[string]float64{
		`rtcio_rule_evaluations_total{event="ping",rule="pinger"}`:   3,
		`rtcio_rule_evaluations_total{event="kept",rule="kept#1"}`:   1,
		`rtcio_rule_evaluations_total{event="fresh",rule="fresh#1"}`: 1,
		`rtcio_events_received_total{event="ping"}`:                  3,
		`rtcio_reloads_total{outcome="success"}`:                     1,
		`rtcio_config_rules`:                                         3,
	} {
		if got, ok := m[series]; !ok || got != v {
			t.Errorf("after reload: %s = %v (present: %v), want %v", series, got, ok, v)
		}
	}
	for series := range m {
		if strings.Contains(series, `event="gone"`) {
			t.Errorf("removed rule's series still served: %s", series)
		}
	}
	if sum := configSHA(t, url); sum == sum0 || sum == "" {
		t.Errorf("rtcio_config_info sha256 %q after reload, was %q", sum, sum0)
	}

	write("rules: [\n") // broken: the old rules stay
	if err := rt.Reload(); err == nil {
		t.Fatal("broken file reloaded")
	}
	m = scrape(t, url)
	if m[`rtcio_reloads_total{outcome="failure"}`] != 1 || m[`rtcio_config_last_reload_successful`] != 0 {
		t.Errorf("failed reload: failures %v, last successful %v", m[`rtcio_reloads_total{outcome="failure"}`], m[`rtcio_config_last_reload_successful`])
	}
	if m[`rtcio_rule_evaluations_total{event="ping",rule="pinger"}`] != 3 {
		t.Error("a failed reload changed the rules' series")
	}
}

// configSHA is the sha256 label of rtcio_config_info.
func configSHA(t testing.TB, url string) string {
	t.Helper()
	for series := range scrape(t, url) {
		if rest, ok := strings.CutPrefix(series, "rtcio_config_info{"); ok {
			if _, after, ok := strings.Cut(rest, `sha256="`); ok {
				return strings.TrimSuffix(after, `"}`)
			}
		}
	}
	return ""
}

// TestMetricsListener: metrics.listen serves the metrics and, with pprof,
// the profiles; the main port then serves neither (main_port: false), and
// never the profiles.
func TestMetricsListener(t *testing.T) {
	get := func(url string) int {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name, section            string
		mainMetrics, sideMetrics int
		sidePprof                int
		noSide                   bool
	}{
		{"separate, pprof on", "metrics: {listen: \"127.0.0.1:9\", main_port: false, pprof: true, path: /m}\n", 404, 200, 200, false},
		{"both ports, pprof off", "metrics: {listen: \"127.0.0.1:9\", path: /m}\n", 200, 200, 404, false},
		{"main port only", "metrics: {path: /m}\n", 200, 0, 0, true},
		{"off", "metrics: {enabled: false, path: /m}\n", 404, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, url := startRouter(t, []byte(tc.section+"rules: []\n"))
			if got := get(url + "/m"); got != tc.mainMetrics {
				t.Errorf("main port /m: %d, want %d", got, tc.mainMetrics)
			}
			if got := get(url + "/debug/pprof/"); got != 404 {
				t.Errorf("main port /debug/pprof/: %d, want 404", got)
			}
			h := rt.MetricsHandler()
			if tc.noSide {
				if h != nil {
					t.Fatal("MetricsHandler without metrics.listen")
				}
				return
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: h}
			go func() { _ = srv.Serve(ln) }()
			t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
			side := "http://" + ln.Addr().String()
			if got := get(side + "/m"); got != tc.sideMetrics {
				t.Errorf("metrics.listen /m: %d, want %d", got, tc.sideMetrics)
			}
			if got := get(side + "/debug/pprof/"); got != tc.sidePprof {
				t.Errorf("metrics.listen /debug/pprof/: %d, want %d", got, tc.sidePprof)
			}
			if tc.sideMetrics == 200 {
				if _, ok := scrape(t, side+"/m")[`rtcio_connects_total`]; !ok {
					t.Error("metrics.listen serves no rtcio_connects_total")
				}
			}
		})
	}
}
