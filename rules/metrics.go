package rules

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Metrics is the metrics: section: where the router's Prometheus metrics
// (and, if asked, its profiles) are served. It shapes listeners, so like
// server: a reload may not change it.
type Metrics struct {
	// Enabled turns the metrics on (the default); off, nothing is counted
	// and nothing is served, which is also how their cost is measured.
	Enabled bool
	// Listen is a second address (host:port) serving only Path and, with
	// Pprof, the profiles, so they can stay off the public port; empty:
	// none.
	Listen string
	// Path is where the metrics are served; default DefaultMetricsPath.
	Path string
	// MainPort also serves Path on the public port; default true. Turning
	// it off requires Listen.
	MainPort bool
	// Pprof serves net/http/pprof under /debug/pprof/ on Listen (never on
	// the public port); default false.
	Pprof bool
}

// DefaultMetricsPath is metrics.path when the file leaves it out.
const DefaultMetricsPath = "/metrics"

// DefaultMetrics is the metrics section of a file that has none: metrics
// on the main port at /metrics, no second listener, no profiles.
func DefaultMetrics() Metrics {
	return Metrics{Enabled: true, Path: DefaultMetricsPath, MainPort: true}
}

// metricsFields are the keys of metrics:, read by metrics.
var metricsFields = []field{
	{"enabled", "Count and serve the Prometheus metrics; default `true`. `false` turns every metric off (nothing is served).",
		obj("type", "boolean", "default", true), false},
	{"listen", "A second `host:port` serving only the metrics (and the profiles, with `pprof`), e.g. `127.0.0.1:9100`, so they need not be on the public port; default none.",
		obj("type", "string", "pattern", ":", "examples", []any{"127.0.0.1:9100"}), false},
	{"path", "Where the metrics are served, on the main port and on `listen`; default `/metrics`.",
		obj("type", "string", "pattern", "^/", "default", DefaultMetricsPath), false},
	{"main_port", "Also serve the metrics on the main (public) port; default `true`. `false` needs `listen`.",
		obj("type", "boolean", "default", true), false},
	{"pprof", "Serve Go's profiles (`net/http/pprof`, under `/debug/pprof/`) on `listen`, never on the main port; default `false`. Needs `listen`.",
		obj("type", "boolean", "default", false), false},
}

// metricsKeys are the names in metricsFields, for "unknown field" hints.
var metricsKeys = keysOf(metricsFields)

func (l *loader) metrics(n *yaml.Node) {
	m := &l.set.Metrics
	var mainOff, pprofOn *yaml.Node
	for _, p := range l.pairs(n, "metrics") {
		what := "metrics." + p.key.Value
		switch p.key.Value {
		case "enabled":
			m.Enabled = l.boolean(p.val, what)
		case "listen":
			if v, ok := l.str(p.val, what); ok {
				if !strings.Contains(v, ":") {
					l.errf(p.val, "%s must be host:port or :port, got %q", what, v)
				}
				m.Listen = v
			}
		case "path":
			if v, ok := l.str(p.val, what); ok {
				if !strings.HasPrefix(v, "/") || v == "/" {
					l.errf(p.val, "%s must start with / and name a path, got %q", what, v)
				}
				m.Path = v
			}
		case "main_port":
			if m.MainPort = l.boolean(p.val, what); !m.MainPort {
				mainOff = p.val
			}
		case "pprof":
			if m.Pprof = l.boolean(p.val, what); m.Pprof {
				pprofOn = p.val
			}
		default:
			l.unknown(p.key, "metrics", metricsKeys)
		}
	}
	if m.Listen == "" && m.Enabled {
		if mainOff != nil {
			l.errf(mainOff, "metrics.main_port: false needs metrics.listen (enabled: false turns the metrics off)")
		}
		if pprofOn != nil {
			l.errf(pprofOn, "metrics.pprof needs metrics.listen: profiles are never served on the main port")
		}
	}
}

// FixedChanges returns an error when next's metrics section differs from
// m's: listeners and what they serve are set up at start-up.
func (m Metrics) FixedChanges(next Metrics) error {
	if m == next {
		return nil
	}
	return fmt.Errorf("reload not supported for metrics: old=%+v, new=%+v (restart to change it)", m, next)
}
