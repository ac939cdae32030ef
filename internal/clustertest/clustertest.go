// Package clustertest runs the example cluster as real processes for tests:
// rtcio-router nodes built from this tree (with the race detector) sharing a
// Redis, behind HAProxy configured by examples/cluster/haproxy.cfg. The
// cluster example's own tests, the rolling restart tests and the demo page's
// browser test through a cluster all drive it, so that there is one way to
// start, watch, stop and restart a node.
//
// haproxy must be on PATH (Debian: apt-get install haproxy; scripts/test.sh
// installs it), as must redis-server and go. Without haproxy a test is
// skipped, unless CI is "true": CI must never pass by skipping.
package clustertest

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/demo"
	"github.com/rtcio/rtcio-router/internal/redistest"
)

// The heartbeat in the tests' rules. The interval is short, so that "stays
// connected over several heartbeats" takes seconds; the timeout leaves room
// for a loaded machine. HAProxy's own timeouts stay as haproxy.cfg ships
// them, for the default 25s interval: longer than this one too.
const (
	PingInterval = time.Second
	PingTimeout  = 5 * time.Second
)

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// RunMain runs a package's tests (call it from TestMain: os.Exit(RunMain(m)))
// and removes the binary Binary built for them.
func RunMain(m *testing.M) int {
	code := m.Run()
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
	return code
}

// Binary builds cmd/rtcio-router once (with the race detector, as the
// other process tests do) and returns its path.
func Binary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "rtcio-cluster-bin")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "rtcio-router")
		cmd := exec.Command("go", "build", "-race", "-o", build.bin, "./cmd/rtcio-router")
		cmd.Dir = moduleRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

// NeedHAProxy returns haproxy's path, skipping the test without it (failing
// under CI=true).
func NeedHAProxy(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil { // Debian puts it in /usr/sbin, which a user's PATH may lack
		bin, err = exec.LookPath("/usr/sbin/haproxy")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("haproxy is not installed (apt-get install haproxy); CI must not skip")
		}
		t.Skip("haproxy not on PATH (apt-get install haproxy)")
	}
	return bin
}

// Rules writes the built-in rules with the tests' short heartbeat and
// extra lines (indented YAML) appended to their server section.
func Rules(t *testing.T, extra string) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(moduleRoot(t), "rtcio.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	for old, repl := range map[string]string{
		"ping_interval: 25s": "ping_interval: " + PingInterval.String(),
		"ping_timeout: 20s":  "ping_timeout: " + PingTimeout.String() + "\n" + extra,
	} {
		if !strings.Contains(s, old) {
			t.Fatalf("rtcio.yaml no longer contains %q", old)
		}
		s = strings.Replace(s, old, repl, 1)
	}
	path := filepath.Join(t.TempDir(), "rtcio.yaml")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// node is a running rtcio-router process with its JSON log read as it
// comes: which socket ids connected to it, and a tail for failure reports.
type Node struct {
	Name string // node1, node2: also its cookie value in haproxy.cfg
	Addr string // where it listens
	cmd  *exec.Cmd
	read chan struct{} // closed when stderr reached EOF

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced on every log line
	listening string
	sockets   map[string]bool // socket_id of every "socket connected" or "socket recovered"
	raced     bool            // the race detector reported
	tail      []string
}

// StartNode starts a node listening on addr ("127.0.0.1:0" for any port)
// and waits until it listens.
func StartNode(t *testing.T, name, addr, bin, rules, redisURL string) *Node {
	t.Helper()
	// --demo: the video-call page, as run.sh serves it (the browser test
	// through the cluster opens it); its socket.io client from demo/.
	args := []string{"-c", rules, "--addr", addr, "--log-format", "json", "--log-level", "debug", "--demo"}
	args = append(args, "--redis", redisURL)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=0", demo.ClientBundleEnv+"="+filepath.Join(moduleRoot(t), "demo"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &Node{Name: name, cmd: cmd, read: make(chan struct{}), changed: make(chan struct{}), sockets: map[string]bool{}}
	go n.readLog(stderr)
	t.Cleanup(func() { n.stop(t) })

	ok := n.wait(15*time.Second, func() bool { return n.listening != "" })
	if !ok {
		t.Fatalf("%s: no \"listening\" log within 15s; log:\n%s", name, n.LogTail())
	}
	n.Addr = n.listening
	return n
}

func (n *Node) readLog(r io.Reader) {
	defer close(n.read)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var m struct {
			Msg      string `json:"msg"`
			Addr     string `json:"addr"`
			SocketID string `json:"socket_id"`
		}
		n.mu.Lock()
		if json.Unmarshal([]byte(line), &m) == nil {
			switch m.Msg {
			case "listening":
				n.listening = m.Addr
			case "socket connected", "socket recovered":
				n.sockets[m.SocketID] = true
			}
		} else if strings.Contains(line, "WARNING: DATA RACE") {
			n.raced = true
		}
		n.tail = append(n.tail, line)
		if len(n.tail) > 200 {
			n.tail = n.tail[len(n.tail)-200:]
		}
		close(n.changed)
		n.changed = make(chan struct{})
		n.mu.Unlock()
	}
}

// wait blocks until cond (called with n.mu held) holds or d passes.
func (n *Node) wait(d time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		n.mu.Lock()
		ok, ch := cond(), n.changed
		n.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-n.read:
			n.mu.Lock()
			defer n.mu.Unlock()
			return cond()
		case <-deadline.C:
			return false
		}
	}
}

func (n *Node) Has(sid string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sockets[sid]
}

func (n *Node) LogTail() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.tail, "\n")
}

// Terminate sends SIGTERM and waits for the process to exit, failing the
// test if it exits with an error.
func (n *Node) Terminate(t *testing.T) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("%s: SIGTERM: %v", n.Name, err)
	}
	if err := n.Exit(15 * time.Second); err != nil {
		t.Fatalf("%s: %v; log:\n%s", n.Name, err, n.LogTail())
	}
}

// Exit waits for the process to exit within d (killing it after that) and
// reports a failed exit or a data race.
func (n *Node) Exit(d time.Duration) error {
	select {
	case <-n.read:
	case <-time.After(d):
		_ = n.cmd.Process.Kill()
		<-n.read
		_ = n.cmd.Wait()
		return fmt.Errorf("did not exit within %v of SIGTERM", d)
	}
	err := n.cmd.Wait()
	n.mu.Lock()
	raced := n.raced
	n.mu.Unlock()
	if raced {
		return errors.New("the race detector reported a data race")
	}
	if err != nil {
		return fmt.Errorf("exit: %v", err)
	}
	return nil
}

// stop ends the process if it still runs: SIGTERM, so that a data race
// found at any point is reported.
func (n *Node) stop(t *testing.T) {
	if n.cmd.ProcessState != nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	if err := n.Exit(15 * time.Second); err != nil {
		t.Errorf("%s: %v; log:\n%s", n.Name, err, n.LogTail())
	} else if t.Failed() {
		t.Logf("%s log:\n%s", n.Name, n.LogTail())
	}
}

// Health returns a node's GET /health status and body.
func Health(t *testing.T, addr string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatalf("health of %s: %v", addr, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &body)
	return resp.StatusCode, body
}

// LB is a running HAProxy.
type LB struct {
	Addr  string // where clients connect
	stats string
	cmd   *exec.Cmd
	out   *tail
	done  chan struct{}
}

type tail struct {
	mu sync.Mutex
	b  []byte
}

func (w *tail) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if len(w.b) > 64<<10 {
		w.b = w.b[len(w.b)-64<<10:]
	}
	return len(p), nil
}

func (w *tail) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// StartHAProxy runs haproxy with cfg in the foreground, its addresses set
// through the environment as run.sh sets them, and waits until both nodes
// passed a /health check.
func StartHAProxy(t *testing.T, bin, cfg string, nodes ...*Node) *LB {
	t.Helper()
	for attempt := 1; ; attempt++ {
		l := &LB{Addr: freePort(t), stats: freePort(t), out: &tail{}, done: make(chan struct{})}
		l.cmd = exec.Command(bin, "-db", "-f", cfg)
		l.cmd.Env = append(os.Environ(),
			"RTCIO_LB_ADDR="+l.Addr, "RTCIO_STATS_ADDR="+l.stats,
			"RTCIO_NODE1_ADDR="+nodes[0].Addr, "RTCIO_NODE2_ADDR="+nodes[1].Addr)
		l.cmd.Stdout, l.cmd.Stderr = l.out, l.out
		if err := l.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = l.cmd.Wait(); close(l.done) }()
		err := l.ready(10 * time.Second)
		if err == nil {
			t.Cleanup(func() {
				_ = l.cmd.Process.Signal(syscall.SIGUSR1) // soft stop
				select {
				case <-l.done:
				case <-time.After(3 * time.Second):
					_ = l.cmd.Process.Kill()
					<-l.done
				}
				if t.Failed() {
					t.Logf("haproxy output:\n%s", l.out.String())
				}
			})
			return l
		}
		_ = l.cmd.Process.Kill()
		<-l.done
		if attempt == 3 {
			t.Fatalf("haproxy: %v; output:\n%s", err, l.out.String())
		}
		t.Logf("haproxy attempt %d: %v", attempt, err)
	}
}

// ready waits until every server of rtcio_nodes is UP after a passed layer
// 7 check (L7OK: /health answered 200).
func (l *LB) ready(d time.Duration) error {
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-l.done:
			return errors.New("haproxy exited")
		default:
		}
		if rows, err := l.statsRows(); err == nil {
			up := 0
			last = ""
			for _, r := range rows {
				if r["pxname"] == "rtcio_nodes" && r["svname"] != "BACKEND" {
					last += fmt.Sprintf(" %s=%s/%s", r["svname"], r["status"], r["check_status"])
					if r["status"] == "UP" && r["check_status"] == "L7OK" {
						up++
					}
				}
			}
			if up == 2 {
				return nil
			}
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nodes not UP after passed checks within %v:%s", d, last)
}

// statsRows reads HAProxy's stats as CSV, one map per proxy or server.
func (l *LB) statsRows() ([]map[string]string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + l.stats + "/;csv")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("stats: %s", resp.Status)
	}
	r := csv.NewReader(resp.Body)
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil || len(recs) == 0 {
		return nil, fmt.Errorf("stats csv: %v", err)
	}
	head := recs[0]
	head[0] = strings.TrimPrefix(head[0], "# ")
	var rows []map[string]string
	for _, rec := range recs[1:] {
		row := map[string]string{}
		for i, v := range rec {
			if i < len(head) {
				row[head[i]] = v
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// Server returns the stats row of one server of rtcio_nodes.
func (l *LB) Server(t *testing.T, name string) map[string]string {
	t.Helper()
	rows, err := l.statsRows()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r["pxname"] == "rtcio_nodes" && r["svname"] == name {
			return r
		}
	}
	t.Fatalf("no server %s in HAProxy's stats", name)
	return nil
}

func (l *LB) URL() string { return "http://" + l.Addr }

// Cluster is the example's setup: Redis, two nodes, HAProxy with
// haproxy.cfg (or cfg, for a variant).
type Cluster struct {
	Nodes []*Node
	LB    *LB

	bin, rules, redisURL string // what a restarted node runs with
}

// Start starts Redis, two nodes on the built-in rules (with server
// settings added, as Rules takes them) and HAProxy with cfg.
func Start(t *testing.T, cfg, server string) *Cluster {
	t.Helper()
	hap := NeedHAProxy(t)
	bin := Binary(t)
	c := &Cluster{bin: bin}
	c.redisURL = redistest.Start(t).URL()
	c.rules = Rules(t, server)
	c.Nodes = []*Node{
		StartNode(t, "node1", "127.0.0.1:0", bin, c.rules, c.redisURL),
		StartNode(t, "node2", "127.0.0.1:0", bin, c.rules, c.redisURL),
	}
	for _, n := range c.Nodes {
		code, body := Health(t, n.Addr)
		if code != 200 || body["status"] != "ok" || body["redis"] != "up" {
			t.Fatalf("%s /health: %d %v", n.Name, code, body)
		}
	}
	c.LB = StartHAProxy(t, hap, cfg, c.Nodes...)
	return c
}

// NodeOf waits until a node logged the socket's connection and returns it.
func (c *Cluster) NodeOf(t *testing.T, sid string) *Node {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range c.Nodes {
			if n.Has(sid) {
				return n
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no node logged the connection of socket %s", sid)
	return nil
}

// moduleRoot returns the directory of this module's go.mod, so that the
// package works from any test's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	mod := strings.TrimSpace(string(out))
	if err != nil || mod == "" || mod == os.DevNull {
		t.Fatalf("clustertest: no go.mod found (go env GOMOD: %q, %v)", mod, err)
	}
	return filepath.Dir(mod)
}

// HAProxyConfig returns the path of examples/cluster/haproxy.cfg, the file
// the tests run HAProxy with, as users are told to copy it.
func HAProxyConfig(t *testing.T) string {
	t.Helper()
	return filepath.Join(moduleRoot(t), "examples", "cluster", "haproxy.cfg")
}

// Restart stops node i with sig (SIGTERM: drain; SIGKILL: no word) and
// starts it again on the same address, then waits until its /health
// answers 200 and HAProxy has it UP again: one step of a rolling restart.
func (c *Cluster) Restart(t *testing.T, i int, sig syscall.Signal) {
	t.Helper()
	old := c.Nodes[i]
	stopped := time.Now()
	if err := old.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: %v: %v", old.Name, sig, err)
	}
	err := old.Exit(15 * time.Second)
	if sig == syscall.SIGKILL && err != nil && strings.Contains(err.Error(), "signal: killed") {
		err = nil
	}
	if err != nil {
		t.Fatalf("%s: %v; log:\n%s", old.Name, err, old.LogTail())
	}
	t.Logf("%s exited %v after %v", old.Name, time.Since(stopped).Round(time.Millisecond), sig)
	n := StartNode(t, old.Name, old.Addr, c.bin, c.rules, c.redisURL)
	c.Nodes[i] = n
	Eventually(t, 15*time.Second, n.Name+" /health 200", func() string {
		if code, body := Health(t, n.Addr); code != 200 {
			return fmt.Sprintf("%d %v", code, body)
		}
		return ""
	})
	Eventually(t, 15*time.Second, "HAProxy has "+n.Name+" UP", func() string {
		if st := c.LB.Server(t, n.Name); st["status"] != "UP" || st["check_status"] != "L7OK" {
			return st["status"] + "/" + st["check_status"]
		}
		return ""
	})
	t.Logf("%s started again and back in HAProxy %v after %v", n.Name, time.Since(stopped).Round(time.Millisecond), sig)
}

// Eventually polls missing until it returns "", failing the test after d
// with what and the last thing missing. d is a deadline for a loaded
// machine, not a measurement.
func Eventually(t *testing.T, d time.Duration, what string, missing func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		m := missing()
		if m == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s; missing: %s", d, what, m)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
