package router_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/rtcio/rtcio-router/internal/jsclient"
	"github.com/rtcio/rtcio-router/internal/redistest"
	"github.com/rtcio/rtcio-router/router"
)

// TestDashboardQueries: every metric the Grafana dashboard
// (docs/grafana-dashboard.json) queries is one a node exports, cluster
// metrics included (the node runs on Redis), so a renamed metric cannot
// leave a panel silently empty.
func TestDashboardQueries(t *testing.T) {
	raw, err := os.ReadFile("../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "query") {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	walk(doc)
	if len(exprs) < 20 {
		t.Fatalf("only %d queries found in the dashboard", len(exprs))
	}

	redis := redistest.Start(t)
	rt, err := router.New(router.Options{RulesFile: "test.yaml", Source: builtinRules(t), Logger: testLogger(), Environ: map[string]string{}, Redis: redis.URL()})
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, rt)
	js := jsclient.Start(t)
	a := js.Connect("a", url, map[string]any{"transports": []string{"websocket"}}).WithT(t)
	a.WaitConnected()
	exported := metricNames(t, url+"/metrics")

	name := regexp.MustCompile(`\b((?:rtcio|go|process)_[a-z0-9_]+)`)
	for _, e := range exprs {
		for _, m := range name.FindAllStringSubmatch(e, -1) {
			n := m[1]
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if base, ok := strings.CutSuffix(n, suffix); ok && exported[base] == "histogram" {
					n = base
				}
			}
			if _, ok := exported[n]; !ok {
				t.Errorf("dashboard query %q names %s, which the server does not export", e, m[1])
			}
		}
	}
}

// metricNames are the metric families url serves, with their types.
func metricNames(t *testing.T, url string) map[string]string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = f[3]
		}
	}
	return out
}
