package demo_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rtcio/rtcio-router/demo"
)

func get(t *testing.T, h http.Handler, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func TestHandlerServesThePage(t *testing.T) {
	h := demo.Handler()
	for path, want := range map[string]struct{ ctype, contains string }{
		"/demo/":          {"text/html", `<script src="app.js" defer></script>`},
		"/demo/app.js":    {"text/javascript", `"join-room"`},
		"/demo/style.css": {"text/css", ".tile"},
	} {
		res, body := get(t, h, path)
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), want.ctype) || !strings.Contains(body, want.contains) {
			t.Errorf("GET %s: %d %q, body has %q: %v", path, res.StatusCode, res.Header.Get("Content-Type"), want.contains, strings.Contains(body, want.contains))
		}
	}
	res, _ := get(t, h, "/demo/")
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("page CSP = %q", csp)
	}
	for _, path := range []string{"/demo/index.html", "/demo/web/app.js", "/demo/nope", "/demo/node_modules/socket.io-client/package.json"} {
		if res, _ := get(t, h, path); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, res.StatusCode)
		}
	}
}

func TestHandlerClientBundle(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(demo.ClientBundleEnv, dir)
	h := demo.Handler()

	// Not installed: a 404 that says how to install it.
	res, body := get(t, h, "/demo/socket.io.min.js")
	if res.StatusCode != http.StatusNotFound || !strings.Contains(body, "npm ci --prefix demo") || strings.Count(strings.TrimSpace(body), "\n") != 0 {
		t.Fatalf("missing client: %d %q", res.StatusCode, body)
	}
	if _, err := demo.ClientBundle(); err == nil || !strings.Contains(err.Error(), "npm ci --prefix demo") {
		t.Fatalf("ClientBundle without an install: %v", err)
	}

	// Installed after start: served from disk at once, no restart.
	dist := filepath.Join(dir, "node_modules", "socket.io-client", "dist")
	if err := os.MkdirAll(dist, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dist, "socket.io.min.js"), []byte("/* the client */"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, body = get(t, h, "/demo/socket.io.min.js")
	if res.StatusCode != 200 || body != "/* the client */" || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("installed client: %d %q %q", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	if p, err := demo.ClientBundle(); err != nil || p != filepath.Join(dist, "socket.io.min.js") {
		t.Fatalf("ClientBundle = %q, %v", p, err)
	}
}
