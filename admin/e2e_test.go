package admin_test

// End-to-end: the real router (built-in rules, admin: on with a password)
// and the Admin UI it serves under /admin/, in Debian's headless Chromium
// driven with chromedp. Two sockets of the official JavaScript client
// (internal/jsclient) share a room; the UI logs in, lists them with their
// rooms, and disconnects one, which that client sees.
//
// Set RTCIO_ADMIN_SCREENSHOT=PATH to save a screenshot of the room's page
// (docs/admin-ui.png is made that way).

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	rtcio "github.com/rtcio/rtcio-router"
	"github.com/rtcio/rtcio-router/internal/headless"
	"github.com/rtcio/rtcio-router/internal/jsclient"
	"github.com/rtcio/rtcio-router/router"
)

// testHash is a bcrypt hash (cost 4) of "secret".
const testHash = "$2a$04$7u.O0qbFkb6rPTx6jR2YE.eWfcV65fNUXrbd81Xf2apAi/P7AL3d6"

func TestE2EAdminUI(t *testing.T) {
	if testing.Short() {
		t.Skip("browser end-to-end test; runs without -short")
	}
	chromium := headless.Find(t)
	if _, err := os.Stat("node_modules/@socket.io/admin-ui/ui/dist/index.html"); err != nil {
		headless.Missing(t, "the admin UI is not installed: npm ci --prefix admin --ignore-scripts")
	}
	base := startRouter(t)

	js := jsclient.Start(t)
	alice := js.Connect("alice", base, nil)
	aliceID := alice.WaitConnected()
	bob := js.Connect("bob", base, nil)
	bobID := bob.WaitConnected()
	alice.Emit("join-room", map[string]any{"roomId": "standup", "name": "Alice"})
	bob.Emit("join-room", map[string]any{"roomId": "standup", "name": "Bob"})
	alice.WaitFor("user-connected", 0)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	page := startBrowser(t, ctx, chromium)
	run := func(what string, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		step, done := context.WithTimeout(page, timeout)
		defer done()
		if err := chromedp.Do(step, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(what, js string) any {
		t.Helper()
		step, done := context.WithTimeout(page, 5*time.Second)
		defer done()
		v, err := chromedp.Run(step, chromedp.Evaluate[any](js))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	// waitText polls the page's text until it holds every want.
	waitText := func(what string, want ...string) {
		t.Helper()
		var text string
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			text, _ = eval("read the page", `document.body.innerText`).(string)
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(text, w)
			}
			if ok {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("%s: the page never showed %q; it shows:\n%s", what, want, text)
	}

	start := time.Now()
	run("open the UI", 15*time.Second, chromedp.EmulateViewport(1280, 800), chromedp.Navigate(base+"/admin/"))
	// The login form, with this server's URL filled in (rtcio-defaults.js).
	run("login form", 10*time.Second, chromedp.WaitVisible(`.v-dialog button[type=submit]`))
	filled := eval("fill the login form", `(() => {
		const set = (label, value) => {
			for (const f of document.querySelectorAll('.v-dialog .v-text-field')) {
				const l = f.querySelector('label');
				if (l && l.textContent.trim().toLowerCase().startsWith(label)) {
					const i = f.querySelector('input');
					i.value = value;
					i.dispatchEvent(new Event('input', {bubbles: true}));
					return true;
				}
			}
			return false;
		};
		return set('username', 'admin') && set('password', 'secret');
	})()`)
	if filled != true {
		t.Fatal("no username or password field in the login form")
	}
	eval("log in", `document.querySelector('.v-dialog button[type=submit]').click()`)
	for deadline := time.Now().Add(10 * time.Second); eval("login dialog", `!!document.querySelector('.v-dialog--active')`) == true; {
		if time.Now().After(deadline) {
			t.Fatalf("still on the login form after submitting it:\n%v", eval("read the page", `document.body.innerText`))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The sockets page lists both sockets; each one's page shows its room.
	eval("sockets page", `location.hash = '#/sockets/'`)
	waitText("sockets list", aliceID, bobID)
	eval("alice's page", fmt.Sprintf(`location.hash = '#/n/%%2F/sockets/%s'`, aliceID))
	waitText("alice's rooms", aliceID, "standup")
	eval("the room's page", `location.hash = '#/n/%2F/rooms/standup'`)
	waitText("the room's members", aliceID, bobID)
	if path := os.Getenv("RTCIO_ADMIN_SCREENSHOT"); path != "" {
		time.Sleep(500 * time.Millisecond)
		step, done := context.WithTimeout(page, 10*time.Second)
		png, err := chromedp.Run(step, chromedp.CaptureScreenshot())
		done()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot saved to %s", path)
	}

	// Disconnect bob from his page: bob's client sees the server's
	// DISCONNECT, alice hears he left, and the UI drops him.
	eval("bob's page", fmt.Sprintf(`location.hash = '#/n/%%2F/sockets/%s'`, bobID))
	waitText("bob's page", bobID, "standup")
	if clicked := eval("disconnect bob", `(() => {
		const i = document.querySelector('button i.mdi-logout');
		if (!i) return false;
		i.closest('button').click();
		return true;
	})()`); clicked != true {
		t.Fatal("no disconnect button on bob's page")
	}
	if reason := bob.WaitDisconnect(); reason != "io server disconnect" {
		t.Fatalf("bob disconnected for %q, want io server disconnect", reason)
	}
	alice.WaitFor("#rtcio:peer-left", 0)
	eval("sockets page", `location.hash = '#/sockets/'`)
	waitText("sockets list without bob", aliceID)
	if text, _ := eval("read the page", `document.body.innerText`).(string); strings.Contains(text, bobID) {
		t.Fatalf("the UI still lists bob after his disconnect:\n%s", text)
	}
	t.Logf("UI scenario: %v", time.Since(start).Round(time.Millisecond))
}

func startRouter(t *testing.T) string {
	t.Helper()
	src := append(append([]byte{}, rtcio.DefaultRules...), []byte("\nadmin:\n  enabled: true\n  password_hash: \""+testHash+"\"\n")...)
	rt, err := router.New(router.Options{
		RulesFile: rtcio.DefaultRulesName,
		Source:    src,
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
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rt.Close(ctx)
		_ = srv.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String()
}

// startBrowser starts a headless Chromium that reaches nothing but this
// machine, and returns a tab in it.
func startBrowser(t *testing.T, ctx context.Context, chromium string) context.Context {
	t.Helper()
	return headless.Start(t, ctx, chromium)
}
