package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMetricsListener runs the binary with metrics.listen: that address
// serves the metrics and the profiles, the public port neither.
func TestMetricsListener(t *testing.T) {
	dir := t.TempDir()
	src := "metrics: {listen: \"127.0.0.1:0\", main_port: false, pprof: true}\nrules:\n  - event: ping\n    do: [ { ack: true } ]\n"
	if err := os.WriteFile(filepath.Join(dir, "rtcio.yaml"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, dir, []string{"PORT=0"})
	side := "http://" + srv.waitLog(t, "serving metrics")["addr"].(string)
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(side + "/metrics"); code != 200 || !strings.Contains(body, "rtcio_build_info{") || !strings.Contains(body, `rtcio_config_rules 1`) {
		t.Fatalf("metrics.listen /metrics: %d\n%.500s", code, body)
	}
	if code, _ := get(side + "/debug/pprof/cmdline"); code != 200 {
		t.Fatalf("metrics.listen /debug/pprof/cmdline: %d, want 200", code)
	}
	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/cmdline"} {
		if code, _ := get(srv.url() + path); code != 404 {
			t.Errorf("public port %s: %d, want 404", path, code)
		}
	}
}
