package demo_test

// End-to-end: the real router (built-in rules, demo page mounted) and the demo page in
// Debian's headless Chromium with fake camera and microphone, doing real
// WebRTC through our signaling. This is the test of the reference server's
// promise: "two browser tabs in the same room get a live video call".
//
// Chromium is driven with chromedp over --remote-debugging-pipe: the whole
// test stays in Go with Go's timeouts, there is no second runtime or CDP port
// in between, and we pass every flag ourselves (each is explained where it
// is set, in the browser's launch options below).
//
// Set RTCIO_DEMO_SCREENSHOT=PATH to save a screenshot of a page with two
// connected peers (docs/demo.png is made that way).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	rtcio "github.com/rtcio/rtcio-router"
	"github.com/rtcio/rtcio-router/demo"
	"github.com/rtcio/rtcio-router/internal/headless"
	"github.com/rtcio/rtcio-router/router"
)

// e2eBudget bounds the whole test, browser included; each wait below has
// its own, smaller bound.
const e2eBudget = 100 * time.Second

func TestE2EVideoCall(t *testing.T) {
	chromium := needBrowser(t)
	base := startRouter(t)

	ctx, cancel := context.WithTimeout(context.Background(), e2eBudget)
	t.Cleanup(cancel)
	browser := startBrowser(t, ctx, chromium)

	for _, transport := range []string{"websocket", "polling"} {
		t.Run(transport, func(t *testing.T) {
			start := time.Now()
			runCall(t, browser, base, transport)
			t.Logf("%s scenario: %v", transport, time.Since(start).Round(time.Millisecond))
		})
	}
}

// needBrowser returns Chromium's path for a browser test, which runs
// without -short only, and needs the page's socket.io client installed.
func needBrowser(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser end-to-end test; runs without -short")
	}
	chromium := headless.Find(t)
	if _, err := demo.ClientBundle(); err != nil {
		headless.Missing(t, err.Error())
	}
	return chromium
}

// runCall is the scenario: alice and bob call, alice mutes, carol joins late
// and sees the mute from the server's cache, bob leaves.
func runCall(t *testing.T, browser context.Context, base, transport string) {
	room := "e2e-" + randomHex(t, 12)
	url := func(name string) string {
		return fmt.Sprintf("%s%s?transport=%s&name=%s&loopback=1#%s", base, demo.Path, transport, name, room)
	}

	alice := openPage(t, browser, "alice", url("alice"))
	aliceSnap := alice.waitFor("signaling up", 10*time.Second, func(s snapshot) bool { return s.Connected && s.ID != "" })
	if aliceSnap.Transport != transport {
		t.Fatalf("alice: signaling over %q, want %q", aliceSnap.Transport, transport)
	}
	bob := openPage(t, browser, "bob", url("bob"))
	joined := time.Now()
	bobSnap := bob.waitFor("signaling up", 10*time.Second, func(s snapshot) bool { return s.Connected && s.ID != "" })

	// Both peer connections reach "connected", each with live remote video.
	alice.waitFor("connected to bob", 15*time.Second, connectedTo(bobSnap.ID))
	bob.waitFor("connected to alice", 15*time.Second, connectedTo(aliceSnap.ID))
	t.Logf("%s: peer connections up %v after bob opened", transport, time.Since(joined).Round(time.Millisecond))
	alice.waitLiveVideo(bobSnap.ID)
	bob.waitLiveVideo(aliceSnap.ID)
	t.Logf("%s: video both ways %v after bob opened", transport, time.Since(joined).Round(time.Millisecond))
	// The existing member is the polite side that was asked to offer.
	if p := alice.snapshot().peer(bobSnap.ID); p == nil || !p.Polite {
		t.Errorf("alice (existing member) should be the polite peer: %+v", p)
	}
	if p := bob.snapshot().peer(aliceSnap.ID); p == nil || p.Polite {
		t.Errorf("bob (newcomer) should be the impolite peer: %+v", p)
	}
	// Alice mutes: bob's tile for alice shows the badge.
	alice.click("#mic")
	muted := time.Now()
	bob.waitFor("alice's muted badge", 5*time.Second, func(s snapshot) bool {
		p := s.peer(aliceSnap.ID)
		return p != nil && p.MicBadge && !p.CamBadge
	})
	t.Logf("%s: mute badge shown %v after the click", transport, time.Since(muted).Round(time.Millisecond))
	if path := os.Getenv("RTCIO_DEMO_SCREENSHOT"); path != "" && transport == "websocket" {
		bob.screenshot(path)
	}

	// Both share their screen at once: each renegotiates while the other's
	// offer is in flight (glare), perfect negotiation sorts it out, and each
	// sees the other's screen tile; stopping (stopScreenShare) removes it.
	shareAt := time.Now()
	bothClick(t, alice, bob, "#share")
	sharing := func(id string) func(snapshot) bool {
		return func(s snapshot) bool { p := s.peer(id); return p != nil && p.Sharing && s.tiles(id) == 2 }
	}
	alice.waitFor("bob's screen share", 10*time.Second, sharing(bobSnap.ID))
	bob.waitFor("alice's screen share", 10*time.Second, sharing(aliceSnap.ID))
	t.Logf("%s: both screen shares shown %v after the clicks (offer collisions: alice %d, bob %d)", transport,
		time.Since(shareAt).Round(time.Millisecond), alice.snapshot().peer(bobSnap.ID).Collisions, bob.snapshot().peer(aliceSnap.ID).Collisions)
	bothClick(t, alice, bob, "#share")
	notSharing := func(id string) func(snapshot) bool {
		return func(s snapshot) bool { p := s.peer(id); return p != nil && !p.Sharing && s.tiles(id) == 1 }
	}
	alice.waitFor("bob's screen share gone", 5*time.Second, notSharing(bobSnap.ID))
	bob.waitFor("alice's screen share gone", 5*time.Second, notSharing(aliceSnap.ID))
	alice.waitFor("still connected to bob", 5*time.Second, connectedTo(bobSnap.ID))

	// Carol joins late: connected to both, and she sees alice muted from the
	// server's media-state cache, bob not.
	carol := openPage(t, browser, "carol", url("carol"))
	carolSnap := carol.waitFor("signaling up", 10*time.Second, func(s snapshot) bool { return s.Connected && s.ID != "" })
	carol.waitFor("connected to alice and bob", 15*time.Second, func(s snapshot) bool {
		return connectedTo(aliceSnap.ID)(s) && connectedTo(bobSnap.ID)(s)
	})
	alice.waitFor("connected to carol", 10*time.Second, connectedTo(carolSnap.ID))
	bob.waitFor("connected to carol", 10*time.Second, connectedTo(carolSnap.ID))
	carol.waitLiveVideo(aliceSnap.ID)
	carol.waitLiveVideo(bobSnap.ID)
	s := carol.waitFor("alice muted (cached), bob not", 5*time.Second, func(s snapshot) bool {
		a, b := s.peer(aliceSnap.ID), s.peer(bobSnap.ID)
		return a != nil && a.MicBadge && b != nil && !b.MicBadge
	})
	if p := s.peer(aliceSnap.ID); p.Polite {
		t.Errorf("carol (newcomer) should be impolite towards alice: %+v", p)
	}

	// Bob closes his tab: his tile goes from alice's and carol's pages within
	// a few seconds (#rtcio:peer-left, not ICE consent expiry after ~30 s).
	bob.noErrors()
	bob.close()
	closed := time.Now()
	gone := func(s snapshot) bool { return s.peer(bobSnap.ID) == nil && s.tiles(bobSnap.ID) == 0 }
	alice.waitFor("bob's tile removed", 5*time.Second, gone)
	carol.waitFor("bob's tile removed", 5*time.Second, gone)
	t.Logf("%s: bob's tile removed %v after his tab closed", transport, time.Since(closed).Round(time.Millisecond))

	// The remaining call is unaffected, and no page reported an error.
	alice.waitFor("still connected to carol", 5*time.Second, connectedTo(carolSnap.ID))
	alice.noErrors()
	carol.noErrors()
	carol.close()
	alice.close()
}

// --- the page's test hooks (window.demo in web/app.js) ------------------------

type snapshot struct {
	ID        string     `json:"id"`
	Connected bool       `json:"connected"`
	Recovered bool       `json:"recovered"` // socket.recovered at the last connect
	Left      []string   `json:"left"`      // ids the server said left
	Transport string     `json:"transport"`
	RoomID    string     `json:"roomId"`
	Peers     []peerSnap `json:"peers"`
	Tiles     []string   `json:"tiles"`
	Errors    []string   `json:"errors"`
}

type peerSnap struct {
	ID            string  `json:"id"`
	Name          string  `json:"name"`
	Polite        bool    `json:"polite"`
	Collisions    int     `json:"collisions"`
	Sharing       bool    `json:"sharing"`
	State         string  `json:"state"`
	MicBadge      bool    `json:"micBadge"`
	CamBadge      bool    `json:"camBadge"`
	Width         int     `json:"width"`
	Height        int     `json:"height"`
	CurrentTime   float64 `json:"currentTime"`
	FramesDecoded int     `json:"framesDecoded"`
}

func (s snapshot) peer(id string) *peerSnap {
	for i := range s.Peers {
		if s.Peers[i].ID == id {
			return &s.Peers[i]
		}
	}
	return nil
}

// tiles counts the tiles in the DOM for id (its camera and any screen share).
func (s snapshot) tiles(id string) int {
	n := 0
	for _, t := range s.Tiles {
		if t == id {
			n++
		}
	}
	return n
}

func connectedTo(id string) func(snapshot) bool {
	return func(s snapshot) bool {
		p := s.peer(id)
		return p != nil && p.State == "connected"
	}
}

// snapshotJS reads the hooks plus the DOM's tiles, so tile removal is checked
// on what the user sees.
const snapshotJS = `(async () => {
  if (!window.demo) return null;
  const s = await window.demo.snapshot();
  s.tiles = [...document.querySelectorAll(".tile.remote")].map((t) => t.dataset.peer);
  return s;
})()`

// --- pages ---------------------------------------------------------------------

type page struct {
	t      *testing.T
	name   string
	ctx    context.Context
	cancel context.CancelFunc
	closed bool

	mu      sync.Mutex
	console []string
}

// openPage opens url in a new browser context (its own cookies, storage and
// permissions, as a separate browser profile would have) and waits for the
// page to load.
func openPage(t *testing.T, browser context.Context, name, url string) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	p := &page{t: t, name: name, ctx: ctx, cancel: cancel}
	t.Cleanup(p.close)
	// The first Do creates the tab and binds it to ctx (no timeout here: the
	// tab would die with it); the browser's own deadline bounds it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("%s: open tab: %v", name, err)
	}
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.console = append(p.console, m.String())
			p.mu.Unlock()
		}
	}()
	step, done := context.WithTimeout(ctx, 15*time.Second)
	defer done()
	if err := chromedp.Do(step, chromedp.EmulateViewport(1280, 760), chromedp.Navigate(url)); err != nil {
		t.Fatalf("%s: navigate to %s: %v", name, url, err)
	}
	return p
}

func (p *page) snapshot() snapshot {
	p.t.Helper()
	s, err := p.trySnapshot(5 * time.Second)
	if err != nil {
		p.fail("read state: %v", err)
	}
	return s
}

func (p *page) trySnapshot(timeout time.Duration) (snapshot, error) {
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[*snapshot](snapshotJS, chromedp.EvalAwaitPromise))
	if err != nil {
		return snapshot{}, err
	}
	if s == nil {
		return snapshot{}, errors.New("window.demo is not defined (app.js not loaded?)")
	}
	return *s, nil
}

// waitFor polls the page's state until cond holds, failing after timeout with
// the last state, the page's errors and its console.
func (p *page) waitFor(what string, timeout time.Duration, cond func(snapshot) bool) snapshot {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	var last snapshot
	var lastErr error
	for {
		last, lastErr = p.trySnapshot(time.Until(deadline) + 100*time.Millisecond)
		if lastErr == nil && cond(last) {
			return last
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	state, _ := json.MarshalIndent(last, "  ", "  ")
	p.fail("%s: not within %v (last error: %v)\n  state: %s", what, timeout, lastErr, state)
	return last
}

// waitLiveVideo waits until the remote video from id has a size and is
// decoding: framesDecoded (getStats) and the element's currentTime advance.
func (p *page) waitLiveVideo(id string) {
	p.t.Helper()
	first := p.waitFor("video from "+id, 10*time.Second, func(s snapshot) bool {
		v := s.peer(id)
		return v != nil && v.Width > 0 && v.Height > 0 && v.FramesDecoded > 0
	}).peer(id)
	p.waitFor("video from "+id+" advancing", 5*time.Second, func(s snapshot) bool {
		v := s.peer(id)
		return v != nil && v.FramesDecoded >= first.FramesDecoded+5 && v.CurrentTime > first.CurrentTime
	})
}

// noErrors fails if the page reported a failure (window.demo.errors): a
// rejected offer or candidate, a socket.io connect error, a getUserMedia
// failure.
func (p *page) noErrors() {
	p.t.Helper()
	if s := p.snapshot(); len(s.Errors) > 0 {
		p.fail("the page reported errors: %q", s.Errors)
	}
}

func (p *page) click(sel string) {
	p.t.Helper()
	if err := p.tryClick(sel); err != nil {
		p.fail("%v", err)
	}
}

// tryClick clicks the button sel as a user would, with the user activation
// that getDisplayMedia requires. It is dispatched in the page rather than as
// mouse events at coordinates, which miss when a tile appearing at the same
// moment moves the layout.
func (p *page) tryClick(sel string) error {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	js := fmt.Sprintf(`(() => { const b = document.querySelector(%q); if (!b || b.disabled || b.hidden) return false; b.click(); return true })()`, sel)
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js, func(p *runtime.EvaluateParams) { p.UserGesture = new(true) }))
	if err == nil && !ok {
		err = errors.New("missing, disabled or hidden")
	}
	if err != nil {
		return fmt.Errorf("%s: click %s: %w", p.name, sel, err)
	}
	return nil
}

// bothClick clicks sel on two pages at the same time.
func bothClick(t *testing.T, a, b *page, sel string) {
	t.Helper()
	errs := make(chan error, 2)
	for _, p := range []*page{a, b} {
		go func() { errs <- p.tryClick(sel) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func (p *page) screenshot(path string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	// Let the videos show a few frames and the badges settle.
	time.Sleep(1500 * time.Millisecond)
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.fail("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatalf("screenshot: %v", err)
	}
	p.t.Logf("screenshot of %s's page saved to %s", p.name, path)
}

// close closes the tab and disposes of its browser context, as closing a
// browser window would: the page's sockets go with it.
func (p *page) close() {
	if p.closed {
		return
	}
	p.closed = true
	p.cancel()
}

func (p *page) fail(format string, args ...any) {
	p.t.Helper()
	p.mu.Lock()
	console := strings.Join(p.console, "\n    ")
	p.mu.Unlock()
	p.t.Fatalf("%s: "+format+"\n  console:\n    %s", append(append([]any{p.name}, args...), console)...)
}

// --- router and browser ----------------------------------------------------------

func startRouter(t *testing.T) string {
	t.Helper()
	rt, err := router.New(router.Options{
		RulesFile: rtcio.DefaultRulesName,
		Source:    rtcio.DefaultRules,
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Environ:   map[string]string{},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := rt.HTTPServer()
	srv.Handler = demo.Mount(srv.Handler)
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rt.Close(ctx)
		_ = srv.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String()
}

// startBrowser starts one headless Chromium for the whole test; each page gets
// its own browser context in it. ctx bounds the browser's life.
func startBrowser(t *testing.T, ctx context.Context, chromium string) context.Context {
	t.Helper()
	return headless.Start(t, ctx, chromium,
		// A camera and a microphone without hardware or a permission prompt;
		// the media permission also makes Chromium offer real host candidates
		// instead of mDNS names that cannot be resolved here.
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		// ICE over 127.0.0.1 (the page keeps only loopback candidates).
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns,Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		// Background tabs must keep decoding video and running timers.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
	)
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
