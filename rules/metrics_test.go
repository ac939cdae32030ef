package rules

import (
	"testing"
)

func TestMetricsSection(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       Metrics
		err        string
	}{
		{"absent", "", DefaultMetrics(), ""},
		{"listener", "metrics: {listen: \"127.0.0.1:9100\", path: /m, pprof: true, main_port: false}\n",
			Metrics{Enabled: true, Listen: "127.0.0.1:9100", Path: "/m", Pprof: true}, ""},
		{"off", "metrics: {enabled: false}\n", Metrics{Path: DefaultMetricsPath, MainPort: true}, ""},
		{"main port off without listen", "metrics: {main_port: false}\n", Metrics{}, "t.yaml:1:22: metrics.main_port: false needs metrics.listen"},
		{"pprof without listen", "metrics: {pprof: true}\n", Metrics{}, "t.yaml:1:18: metrics.pprof needs metrics.listen"},
		{"bad listen", "metrics: {listen: \"9100\"}\n", Metrics{}, "t.yaml:1:19: metrics.listen must be host:port"},
		{"bad path", "metrics: {path: metrics}\n", Metrics{}, "t.yaml:1:17: metrics.path must start with /"},
		{"unknown key", "metrics: {pprf: true}\n", Metrics{}, "t.yaml:1:11: metrics: unknown field \"pprf\" (did you mean \"pprof\"?)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := parseSection(t, tc.yaml, tc.err)
			if set == nil {
				return
			}
			if set.Metrics != tc.want {
				t.Fatalf("metrics %+v, want %+v", set.Metrics, tc.want)
			}
		})
	}
	a := DefaultMetrics()
	b := a
	b.Listen = "127.0.0.1:9100"
	if a.FixedChanges(a) != nil || a.FixedChanges(b) == nil {
		t.Fatal("FixedChanges must refuse a change of metrics, and only that")
	}
}
