// Package headless starts Debian's Chromium for the browser end-to-end
// tests (the demo call, the admin UI), with what these machines need: no
// sandbox as root, a fresh profile per run, and no byte leaving the
// machine. Each test adds the flags of its own (a fake camera, say).
package headless

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Find returns Chromium's binary ($CHROMIUM overrides). Missing, the test
// fails in CI (scripts/test.sh installs it, so CI never passes by
// skipping) and is skipped elsewhere.
func Find(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	// The real binary: /usr/bin/chromium is a wrapper script that adds
	// flags from /etc/chromium.d.
	for _, p := range []string{"/usr/lib/chromium/chromium", "/usr/bin/chromium"} {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	Missing(t, "Chromium not found: apt-get install -y chromium (scripts/test.sh does), or set CHROMIUM=/path/to/chromium")
	return ""
}

// Missing fails the test in CI and skips it elsewhere: for anything a
// browser test needs that is not there.
func Missing(t *testing.T, why string) {
	t.Helper()
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		t.Fatalf("CI=%s and the browser test cannot run: %s", ci, why)
	}
	t.Skipf("skipping the browser end-to-end test: %s", why)
}

// Start runs one headless Chromium for the test, with extra flags after
// the common ones, and returns a browser context (its first tab); ctx
// bounds its life and it is stopped when t ends.
func Start(t *testing.T, ctx context.Context, chromium string, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	out := &syncBuffer{}
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()), // fresh profile every run
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.NoSandbox, // required as root
		chromedp.CombinedOutput(out),
		// Keep every byte on this machine.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1"),
		chromedp.Flag("disable-dev-shm-usage", true),
	}, extra...)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	start := time.Now()
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start %s: %v\n%s", chromium, err, out.String())
	}
	t.Logf("chromium started in %v", time.Since(start).Round(time.Millisecond))
	return browser
}

// syncBuffer collects Chromium's output, written from its own goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
