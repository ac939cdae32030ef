package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/jsclient"
)

// binary is the rtcio-router built once for these tests, so they exercise
// the real process: flags, signals, exit codes.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rtcio-router-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "rtcio-router")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic("build: " + err.Error())
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func runCmd(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errOut.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), 0
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestVersion(t *testing.T) {
	out, _, code := runCmd(t, ".", "--version")
	if code != 0 || !strings.HasPrefix(out, "rtcio-router ") {
		t.Fatalf("--version: code %d, %q", code, out)
	}
}

func TestCheck(t *testing.T) {
	root := repoRoot(t)
	out, errOut, code := runCmd(t, root, "check", "-c", "rtcio.yaml")
	if code != 0 {
		t.Fatalf("check rtcio.yaml: code %d\n%s", code, errOut)
	}
	for _, want := range []string{"rule join-room at", "rule disconnecting at", "ok: rtcio.yaml: 4 rules"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}

	bad := filepath.Join(root, "rules/testdata/expr_errors.bad.yaml")
	_, errOut, code = runCmd(t, root, "check", "-c", bad)
	if code != exitBadConfig {
		t.Fatalf("check bad file: code %d, want %d", code, exitBadConfig)
	}
	for _, want := range []string{
		`expr_errors.bad.yaml:6:14: rule "join-room": validate: unknown name "dta" (did you mean "data"?)`,
		`expr_errors.bad.yaml:14:22: rule "join-room": emit: room: unknown store "medai" (did you mean "media"?)`,
		"4 error(s)",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("check stderr lacks %q:\n%s", want, errOut)
		}
	}

	// Without -c and without ./rtcio.yaml, the built-in rules are used.
	out, _, code = runCmd(t, t.TempDir(), "check")
	if code != 0 || !strings.Contains(out, "ok: rtcio.yaml (built in): 4 rules") {
		t.Fatalf("built-in check: code %d\n%s", code, out)
	}

	if _, _, code = runCmd(t, ".", "check", "-c", "/no/such/file.yaml"); code == 0 {
		t.Fatal("missing file accepted")
	}
	if _, _, code = runCmd(t, ".", "frobnicate"); code != exitUsage {
		t.Fatalf("unknown command: code %d", code)
	}
}

// server is a running rtcio-router process.
type server struct {
	cmd  *exec.Cmd
	addr string
	logs chan map[string]any
}

// startServer runs the binary with args and waits for its "listening" log.
func startServer(t *testing.T, dir string, env []string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"--log-format", "json", "--log-level", "debug"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, logs: make(chan map[string]any, 1000)}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				select {
				case s.logs <- m:
				default:
				}
			}
		}
		close(s.logs)
	}()
	m := s.waitLog(t, "listening")
	s.addr = m["addr"].(string)
	return s
}

// waitLog returns the next log record with message msg.
func (s *server) waitLog(t *testing.T, msg string) map[string]any {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-s.logs:
			if !ok {
				t.Fatalf("server exited before logging %q", msg)
			}
			if m["msg"] == msg {
				return m
			}
		case <-timeout:
			t.Fatalf("no %q log within 10s", msg)
		}
	}
}

func (s *server) url() string { return "http://" + s.addr }

func health(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &body)
	return resp.StatusCode, body
}

// TestServeAndShutdown runs the real binary: PORT picks the port (0: the
// kernel chooses one, which the "listening" log reports, rather than the
// built-in file's :3001), the built-in rules answer a two-peer join, and
// SIGTERM drains: clients see a transport close (so they reconnect
// elsewhere) and the process exits 0.
func TestServeAndShutdown(t *testing.T) {
	srv := startServer(t, t.TempDir(), []string{"PORT=0"})
	host, port, err := net.SplitHostPort(srv.addr)
	if err != nil || port == "0" || port == "3001" || (host != "::" && host != "0.0.0.0") {
		t.Fatalf("listening on %s, want every interface and a port chosen for PORT=0", srv.addr)
	}
	srv.addr = net.JoinHostPort("127.0.0.1", port)
	if code, body := health(t, srv.url()); code != 200 || body["status"] != "ok" {
		t.Fatalf("health: %d %v", code, body)
	}
	js := jsclient.Start(t)
	a := js.Connect("a", srv.url(), map[string]any{"reconnection": false})
	b := js.Connect("b", srv.url(), map[string]any{"reconnection": false})
	a.WaitConnected()
	b.WaitConnected()
	// Whichever join the server handles first, each peer hears of the
	// other, with the same payload: as a newcomer's backfill or as the
	// room's user-connected. (Only the init-offer depends on the order.)
	a.Emit("join-room", map[string]any{"roomId": "r", "name": "a"})
	b.Emit("join-room", map[string]any{"roomId": "r", "name": "b"})
	b.Expect(t, "user-connected", map[string]any{"id": a.ID(), "name": "a"})
	a.Expect(t, "user-connected", map[string]any{"id": b.ID(), "name": "b"})

	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if reason := a.WaitDisconnect(); reason != "transport close" {
		t.Errorf("client saw %q, want transport close", reason)
	}
	done := make(chan error, 1)
	go func() { done <- srv.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("server did not exit after SIGTERM")
	}
}

// TestAddrFlagAndReload: --addr wins over PORT; SIGHUP loads a new event
// for an already connected socket, and a broken file is refused with its
// position (in the log and in /health) while the old rules keep serving
// with the state they had: a late joiner is backfilled with the media
// state a member stored before the reload.
func TestAddrFlagAndReload(t *testing.T) {
	dir := t.TempDir()
	root := repoRoot(t)
	builtin, err := os.ReadFile(filepath.Join(root, "rtcio.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// An acked event, so a client knows when its earlier events were handled.
	base := string(builtin) + "\n  - event: sync\n    do:\n      - ack: true\n"
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, dir, []string{"PORT=1"}, "-c", path, "--addr", "127.0.0.1:0")
	js := jsclient.Start(t)
	a := js.Connect("a", srv.url(), nil).WithT(t)
	a.WaitConnected()
	id := a.ID()
	if _, err := a.EmitWithAckTimeout(300*time.Millisecond, "ping-me"); err == nil {
		t.Fatal("ping-me answered before it was declared")
	}
	a.Emit("join-room", map[string]any{"roomId": "r", "name": "a"})
	a.Emit("media-state", map[string]any{"roomId": "r", "mic": false, "cam": true})
	a.EmitWithAck("sync") // both handled

	broken := base + "\n  - event: ping-me\n    do:\n      - ack: nope\n"
	if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = srv.cmd.Process.Signal(syscall.SIGHUP)
	m := srv.waitLog(t, "reload rejected; keeping the previous rules")
	if !strings.Contains(m["err"].(string), `rules.yaml:`) || !strings.Contains(m["err"].(string), `unknown name "nope"`) {
		t.Fatalf("reload error lacks position: %v", m["err"])
	}
	code, body := health(t, srv.url())
	if msg, _ := body["last_reload_error"].(string); code != 200 || body["last_reload_ok"] != false ||
		!strings.Contains(msg, `rules.yaml:`) || !strings.Contains(msg, `unknown name "nope"`) {
		t.Fatalf("health after bad reload: %d %v", code, body)
	}
	late := js.Connect("late", srv.url(), nil).WithT(t)
	late.WaitConnected()
	late.Emit("join-room", map[string]any{"roomId": "r", "name": "late"})
	late.Expect(t, "user-connected", map[string]any{"id": id, "name": "a"})
	late.Expect(t, "media-state", map[string]any{"id": id, "roomId": "r", "mic": false, "cam": true})
	a.Expect(t, "user-connected", map[string]any{"id": late.ID(), "name": "late"})
	a.Expect(t, "#rtcio:init-offer", map[string]any{"source": late.ID()})

	good := base + "\n  - event: ping-me\n    do:\n      - ack: \"pong\"\n"
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = srv.cmd.Process.Signal(syscall.SIGHUP)
	srv.waitLog(t, "rules reloaded")
	if got := a.EmitWithAck("ping-me"); !jsclient.Equal(got, []any{"pong"}) {
		t.Fatalf("ping-me after reload: %v", got)
	}
	if a.ID() != id {
		t.Fatal("reload changed the socket")
	}
	if code, body := health(t, srv.url()); code != 200 || body["last_reload_ok"] != true || body["last_reload_error"] != nil {
		t.Fatalf("health after good reload: %d %v", code, body)
	}
}

// TestConfigTests runs `rtcio-router test` on the shipped tests (they
// pass) and on a fixture with wrong expectations (exit 1, with the diff).
func TestConfigTests(t *testing.T) {
	root := repoRoot(t)
	out, errOut, code := runCmd(t, root, "test", "rtcio.test.yaml", "examples")
	if code != 0 || !strings.Contains(out, " passed, 0 failed") {
		t.Fatalf("shipped config tests: code %d\n%s%s", code, out, errOut)
	}
	out, _, code = runCmd(t, root, "test", "configtest/testdata/failing.fixture.yaml")
	if code != exitFailure || !strings.Contains(out, "0 passed, 4 failed") || !strings.Contains(out, `✗ #1 want #rtcio:init-offer {"source":"bob"}`) {
		t.Fatalf("failing config tests: code %d\n%s", code, out)
	}
	_, errOut, code = runCmd(t, root, "test", "configtest/testdata/malformed.fixture.yaml")
	if code != exitBadConfig || !strings.Contains(errOut, `unknown field "form" (did you mean "from"?)`) {
		t.Fatalf("malformed config tests: code %d\n%s", code, errOut)
	}
}

// TestSchema: `rtcio-router schema` prints the committed rtcio.schema.json.
func TestSchema(t *testing.T) {
	root := repoRoot(t)
	out, _, code := runCmd(t, root, "schema")
	want, err := os.ReadFile(filepath.Join(root, "rtcio.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || out != string(want) {
		t.Fatalf("schema: code %d, output differs from rtcio.schema.json", code)
	}
}

// TestShutdownWithPollingClients: SIGTERM with a long-polling client
// connected and another polling client half-way through a POST body. The
// router's Close answers the long poll with the CLOSE packet and cuts the
// unfinished body, so http.Server.Shutdown has nothing left to wait for:
// the client sees a transport close and the process exits 0 without
// "http shutdown: context deadline exceeded" (before, Shutdown waited for
// the POST until its 10 s deadline). The default heartbeat makes the body
// deadline (20 s) longer than the shutdown budget, so it cannot be what
// ends the POST.
func TestShutdownWithPollingClients(t *testing.T) {
	srv := startServer(t, t.TempDir(), nil, "--addr", "127.0.0.1:0")
	js := jsclient.Start(t)
	a := js.Connect("a", srv.url(), map[string]any{"reconnection": false, "transports": []string{"polling"}})
	a.WaitConnected()

	// A raw polling session whose POST body stops after a few bytes.
	resp, err := http.Get(srv.url() + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	open, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var hs struct {
		Sid string `json:"sid"`
	}
	if len(open) < 2 || json.Unmarshal(open[1:], &hs) != nil || hs.Sid == "" {
		t.Fatalf("handshake: %d %q", resp.StatusCode, open)
	}
	conn, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /socket.io/?EIO=4&transport=polling&sid="+hs.Sid+
		" HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n40"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the POST reaches its handler

	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if reason := a.WaitDisconnect(); reason != "transport close" {
		t.Errorf("polling client saw %q, want transport close", reason)
	}
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("unfinished POST at shutdown: %v, %v; want 503", resp, err)
	}
	// Every log line until exit: none may say that closing or the HTTP
	// shutdown ran out of time.
	for m := range srv.logs {
		if m["level"] == "WARN" || m["level"] == "ERROR" {
			t.Errorf("shutdown logged %v: %v", m["msg"], m["err"])
		}
	}
	if err := srv.cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
}
