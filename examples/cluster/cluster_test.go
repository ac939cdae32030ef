// Package cluster tests examples/cluster: two rtcio-router nodes sharing a
// Redis, behind HAProxy configured by the example's own haproxy.cfg, driven
// by the official socket.io-client (internal/jsclient) over long-polling,
// polling-then-WebSocket and WebSocket-only transports.
//
// haproxy must be on PATH (Debian: apt-get install haproxy; scripts/test.sh
// installs it), as must redis-server, node and npm. Without haproxy the
// tests are skipped, unless CI is "true": CI must never pass by skipping.
package cluster

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/jsclient"
	"github.com/rtcio/rtcio-router/internal/redistest"
)

// The heartbeat in the tests' rules. The interval is short, so that "stays
// connected over several heartbeats" takes seconds; the timeout leaves room
// for a loaded machine. HAProxy's own timeouts stay as haproxy.cfg ships
// them, for the default 25s interval: longer than this one too.
const (
	pingInterval = time.Second
	pingTimeout  = 5 * time.Second
)

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// binary builds cmd/rtcio-router once (with the race detector, as the
// other process tests do) and returns its path.
func binary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "rtcio-cluster-bin")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "rtcio-router")
		cmd := exec.Command("go", "build", "-race", "-o", build.bin, "../../cmd/rtcio-router")
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

// needHAProxy returns haproxy's path, skipping the test without it (failing
// under CI=true).
func needHAProxy(t *testing.T) string {
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

// rulesFile writes the built-in rules with the tests' short heartbeat and
// extra lines (indented YAML) appended to their server section.
func rulesFile(t *testing.T, extra string) string {
	t.Helper()
	src, err := os.ReadFile("../../rtcio.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	for old, repl := range map[string]string{
		"ping_interval: 25s": "ping_interval: " + pingInterval.String(),
		"ping_timeout: 20s":  "ping_timeout: " + pingTimeout.String() + "\n" + extra,
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
type node struct {
	name string
	addr string
	cmd  *exec.Cmd
	read chan struct{} // closed when stderr reached EOF

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced on every log line
	listening string
	sockets   map[string]bool // socket_id of every "socket connected" or "socket recovered"
	raced     bool            // the race detector reported
	tail      []string
}

// startNode starts a node listening on addr ("127.0.0.1:0" for any port)
// and waits until it listens.
func startNode(t *testing.T, name, addr, bin, rules, redisURL string) *node {
	t.Helper()
	args := []string{"-c", rules, "--addr", addr, "--log-format", "json", "--log-level", "debug"}
	args = append(args, "--redis", redisURL)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &node{name: name, cmd: cmd, read: make(chan struct{}), changed: make(chan struct{}), sockets: map[string]bool{}}
	go n.readLog(stderr)
	t.Cleanup(func() { n.stop(t) })

	ok := n.wait(15*time.Second, func() bool { return n.listening != "" })
	if !ok {
		t.Fatalf("%s: no \"listening\" log within 15s; log:\n%s", name, n.logTail())
	}
	n.addr = n.listening
	return n
}

func (n *node) readLog(r io.Reader) {
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
func (n *node) wait(d time.Duration, cond func() bool) bool {
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

func (n *node) has(sid string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sockets[sid]
}

func (n *node) logTail() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.tail, "\n")
}

// terminate sends SIGTERM and waits for the process to exit, failing the
// test if it exits with an error.
func (n *node) terminate(t *testing.T) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("%s: SIGTERM: %v", n.name, err)
	}
	if err := n.exit(15 * time.Second); err != nil {
		t.Fatalf("%s: %v; log:\n%s", n.name, err, n.logTail())
	}
}

// exit waits for the process to exit within d (killing it after that) and
// reports a failed exit or a data race.
func (n *node) exit(d time.Duration) error {
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
func (n *node) stop(t *testing.T) {
	if n.cmd.ProcessState != nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	if err := n.exit(15 * time.Second); err != nil {
		t.Errorf("%s: %v; log:\n%s", n.name, err, n.logTail())
	} else if t.Failed() {
		t.Logf("%s log:\n%s", n.name, n.logTail())
	}
}

// health returns a node's GET /health status and body.
func health(t *testing.T, addr string) (int, map[string]any) {
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

// lb is a running HAProxy.
type lb struct {
	addr, stats string
	cmd         *exec.Cmd
	out         *tail
	done        chan struct{}
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

// startHAProxy runs haproxy with cfg in the foreground, its addresses set
// through the environment as run.sh sets them, and waits until both nodes
// passed a /health check.
func startHAProxy(t *testing.T, bin, cfg string, nodes ...*node) *lb {
	t.Helper()
	for attempt := 1; ; attempt++ {
		l := &lb{addr: freePort(t), stats: freePort(t), out: &tail{}, done: make(chan struct{})}
		l.cmd = exec.Command(bin, "-db", "-f", cfg)
		l.cmd.Env = append(os.Environ(),
			"RTCIO_LB_ADDR="+l.addr, "RTCIO_STATS_ADDR="+l.stats,
			"RTCIO_NODE1_ADDR="+nodes[0].addr, "RTCIO_NODE2_ADDR="+nodes[1].addr)
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
func (l *lb) ready(d time.Duration) error {
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
func (l *lb) statsRows() ([]map[string]string, error) {
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

// server returns the stats row of one server of rtcio_nodes.
func (l *lb) server(t *testing.T, name string) map[string]string {
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

func (l *lb) url() string { return "http://" + l.addr }

// cluster is the example's setup: Redis, two nodes, HAProxy with
// haproxy.cfg (or cfg, for a variant).
type cluster struct {
	nodes []*node
	lb    *lb

	bin, rules, redisURL string // what a restarted node runs with
}

// startCluster starts Redis, two nodes on the built-in rules (with server
// settings added, as rulesFile takes them) and HAProxy with cfg.
func startCluster(t *testing.T, cfg, server string) *cluster {
	t.Helper()
	hap := needHAProxy(t)
	bin := binary(t)
	c := &cluster{bin: bin}
	c.redisURL = redistest.Start(t).URL()
	c.rules = rulesFile(t, server)
	c.nodes = []*node{
		startNode(t, "node1", "127.0.0.1:0", bin, c.rules, c.redisURL),
		startNode(t, "node2", "127.0.0.1:0", bin, c.rules, c.redisURL),
	}
	for _, n := range c.nodes {
		code, body := health(t, n.addr)
		if code != 200 || body["status"] != "ok" || body["redis"] != "up" {
			t.Fatalf("%s /health: %d %v", n.name, code, body)
		}
	}
	c.lb = startHAProxy(t, hap, cfg, c.nodes...)
	return c
}

// nodeOf waits until a node logged the socket's connection and returns it.
func (c *cluster) nodeOf(t *testing.T, sid string) *node {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range c.nodes {
			if n.has(sid) {
				return n
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no node logged the connection of socket %s", sid)
	return nil
}

// The transports the clients use, as an application would configure
// socket.io-client. withCredentials makes socket.io-client in Node keep
// cookies (a browser keeps them anyway): without it the SERVERID cookie is
// dropped and long-polling is not sticky.
var kinds = []struct {
	name      string
	opts      map[string]any
	transport string // once connected (and upgraded)
}{
	{"upgrade", map[string]any{"withCredentials": true}, "websocket"},
	{"websocket", map[string]any{"transports": []string{"websocket"}}, "websocket"},
	{"polling", map[string]any{"transports": []string{"polling"}, "withCredentials": true}, "polling"},
}

// client is one socket.io-client connected through HAProxy.
type client struct {
	*jsclient.Client
	kind string // its entry in kinds
	sid  string // its first session id
	node *node  // the node that session is on
}

// TestStickyCluster drives clients of every transport through HAProxy:
// they connect, upgrade, are spread over both nodes, stay connected over
// several heartbeats, talk across nodes, and move to the other node when
// theirs goes away.
func TestStickyCluster(t *testing.T) {
	c := startCluster(t, "haproxy.cfg", "")
	js := jsclient.Start(t)

	var clients []*client
	for i := 0; i < 2; i++ {
		for _, k := range kinds {
			opts := map[string]any{"reconnectionDelay": 200, "reconnectionDelayMax": 1000}
			for key, v := range k.opts {
				opts[key] = v
			}
			name := fmt.Sprintf("%s-%d", k.name, i+1)
			jc := js.Connect(name, c.lb.url(), opts).WithT(t)
			cl := &client{Client: jc, kind: k.name, sid: jc.WaitConnected()}
			// An upgrade is a request on its own connection: it reaches
			// the node holding the session only by the cookie.
			jc.WaitTransport(k.transport)
			cl.node = c.nodeOf(t, cl.sid)
			clients = append(clients, cl)
		}
	}
	connectedAt := time.Now()
	t.Logf("%d clients connected", len(clients))

	// (b) The load balancer spread them.
	perNode := map[*node][]string{}
	for _, cl := range clients {
		perNode[cl.node] = append(perNode[cl.node], cl.Name())
	}
	for _, n := range c.nodes {
		t.Logf("%s: %v", n.name, perNode[n])
		if len(perNode[n]) == 0 {
			t.Errorf("no client on %s: HAProxy did not spread the connections", n.name)
		}
		if st := c.lb.server(t, n.name); st["stot"] == "0" {
			t.Errorf("HAProxy's stats show no session on %s: %v", n.name, st)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// (a) Everyone stays connected, on the same session, over several
	// heartbeats: polls, POSTs and the upgraded WebSockets all pass
	// HAProxy to the right node.
	if hold := 4*pingInterval - time.Since(connectedAt); hold > 0 {
		time.Sleep(hold)
	}
	checkAlive(t, clients, connectedAt)
	t.Logf("all connected after %v", time.Since(connectedAt).Round(time.Millisecond))

	// (c) One room across both nodes: everyone hears everyone once, one
	// init-offer per pair, and relays go both ways with the source stamped.
	checkRoom(t, clients)
	t.Log("room checked")
	checkRelays(t, clients)
	t.Log("relays checked")
	checkAlive(t, clients, connectedAt)

	// A long-polling tab closes in the middle of a poll: HAProxy passes
	// the abort on (option abortonclose), so its node drops the socket at
	// once and the room hears #rtcio:peer-left, rather than after
	// ping_interval + ping_timeout.
	checkTabClose(t, c, clients)
	t.Log("tab close checked")

	// Failover: node2 drains (SIGTERM). Its clients see "transport close"
	// and reconnect by themselves; HAProxy sends those holding a node2
	// cookie to node1 (option redispatch) and its checks mark node2 DOWN.
	gone := c.nodes[1]
	var moved []*client
	for _, cl := range clients {
		if cl.node == gone {
			moved = append(moved, cl)
		}
	}
	gone.terminate(t)
	t.Log("node2 exited")
	waitAll(t, 15*time.Second, "the clients of node2 reconnected", func() string {
		for _, cl := range moved {
			if !cl.Connected() || cl.ID() == cl.sid {
				return fmt.Sprintf("%s (connected=%v)", cl.Name(), cl.Connected())
			}
		}
		return ""
	})
	t.Log("node2's clients reconnected")
	for _, cl := range moved {
		if n := c.nodeOf(t, cl.ID()); n != c.nodes[0] {
			t.Errorf("%s reconnected to %s", cl.Name(), n.name)
		}
		if got := cl.Transport(); got != transportOf(cl.kind) && cl.kind != "upgrade" {
			t.Errorf("%s: transport %q after reconnecting", cl.Name(), got)
		}
	}
	waitAll(t, 10*time.Second, "HAProxy marked node2 DOWN", func() string {
		if st := c.lb.server(t, "node2")["status"]; !strings.HasPrefix(st, "DOWN") {
			return "node2 is " + st
		}
		return ""
	})
	for _, cl := range clients {
		if cl.node != gone && (!cl.Connected() || cl.ID() != cl.sid) {
			t.Errorf("%s on node1 was disturbed by node2 leaving", cl.Name())
		}
	}
}

// checkAlive fails the test unless every client is still connected on its
// first session and transport.
func checkAlive(t *testing.T, clients []*client, since time.Time) {
	t.Helper()
	for _, cl := range clients {
		if !cl.Connected() || cl.ID() != cl.sid {
			t.Errorf("%s (%s): connected=%v id=%q, want still connected as %s (%s)",
				cl.Name(), cl.kind, cl.Connected(), cl.ID(), cl.sid, cl.node.name)
		}
		if got := cl.Transport(); got != transportOf(cl.kind) {
			t.Errorf("%s: transport %q after %v", cl.Name(), got, time.Since(since).Round(time.Millisecond))
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

func transportOf(kind string) string {
	for _, k := range kinds {
		if k.name == kind {
			return k.transport
		}
	}
	return ""
}

// waitAll polls missing until it returns "", failing the test after d
// with what and the last thing missing.
func waitAll(t *testing.T, d time.Duration, what string, missing func() string) {
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

// unsticky writes haproxy.cfg without its SERVERID cookie, and with round
// robin instead of leastconn so that consecutive requests alternate between
// the nodes at every run (leastconn fails the same way, at random).
func unsticky(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	edits := 0
	for _, line := range strings.Split(string(src), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 1 && f[0] == "cookie" && f[1] == "SERVERID":
			edits++
			continue
		case len(f) > 1 && f[0] == "balance":
			edits++
			line = "    balance roundrobin"
		case len(f) > 3 && f[0] == "server" && f[len(f)-2] == "cookie":
			edits++
			line = "    " + strings.Join(f[:len(f)-2], " ")
		}
		out = append(out, line)
	}
	if edits != 4 {
		t.Fatalf("haproxy.cfg: made %d of the 4 edits that remove stickiness; update unsticky", edits)
	}
	path := filepath.Join(t.TempDir(), "haproxy-unsticky.cfg")
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// tab is a long-polling socket.io client made of plain HTTP requests, as a
// browser tab's is: unlike socket.io-client in Node, it can go away in the
// middle of a long poll, as a closed tab does.
type tab struct {
	t    *testing.T
	hc   *http.Client
	base string
	sid  string // engine.io session
	id   string // socket.io socket
}

// openTab connects a tab through HAProxy (keeping its cookie) and joins it
// to room as name.
func openTab(t *testing.T, base, room, name string) *tab {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &tab{t: t, hc: &http.Client{Jar: jar}, base: base}
	code, body := poll(t, b.hc, base, "")
	if code != 200 {
		t.Fatalf("tab handshake: %d %s", code, body)
	}
	b.sid = handshakeSID(t, body)
	b.post("40")
	for b.id == "" {
		for _, pkt := range b.get(context.Background()) {
			if rest, ok := strings.CutPrefix(pkt, "40"); ok {
				var ack struct {
					SID string `json:"sid"`
				}
				if err := json.Unmarshal([]byte(rest), &ack); err != nil || ack.SID == "" {
					t.Fatalf("tab: bad CONNECT ack %q", pkt)
				}
				b.id = ack.SID
			}
		}
	}
	join, _ := json.Marshal([]any{"join-room", map[string]any{"roomId": room, "name": name}})
	b.post("42" + string(join))
	return b
}

func (b *tab) url() string {
	return b.base + "/socket.io/?" + url.Values{"EIO": {"4"}, "transport": {"polling"}, "sid": {b.sid}}.Encode()
}

// post sends engine.io packets (separated by \x1e).
func (b *tab) post(payload string) {
	b.t.Helper()
	resp, err := b.hc.Post(b.url(), "text/plain;charset=UTF-8", strings.NewReader(payload))
	if err != nil {
		b.t.Fatalf("tab POST: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		b.t.Fatalf("tab POST %q: %d %s", payload, resp.StatusCode, body)
	}
}

// get makes one long poll and returns its packets, answering a ping.
func (b *tab) get(ctx context.Context) []string {
	b.t.Helper()
	pkts, err := b.tryGet(ctx)
	if err != nil {
		b.t.Fatalf("tab poll: %v", err)
	}
	return pkts
}

func (b *tab) tryGet(ctx context.Context) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%d %s", resp.StatusCode, body)
	}
	pkts := strings.Split(string(body), "\x1e")
	if slices.Contains(pkts, "2") {
		b.post("3")
	}
	return pkts, nil
}

// close goes away in the middle of a long poll, as a closed tab does: the
// connection of a pending GET is closed, and nothing else is sent.
func (b *tab) close() {
	b.t.Helper()
	for {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := b.tryGet(ctx)
			done <- err
		}()
		select {
		case err := <-done: // answered (a heartbeat) before it could be cut: again
			cancel()
			if err != nil {
				b.t.Fatalf("tab poll: %v", err)
			}
			continue
		case <-time.After(100 * time.Millisecond):
		}
		cancel()
		<-done
		return
	}
}

// checkTabClose opens a tab in the clients' room, closes it in the middle
// of a long poll and checks that every client hears #rtcio:peer-left for
// it well within ping_interval + ping_timeout.
func checkTabClose(t *testing.T, c *cluster, clients []*client) {
	t.Helper()
	b := openTab(t, c.lb.url(), "lb", "tab")
	heard := func(name string, payload map[string]any) string {
		for _, cl := range clients {
			found := false
			for _, ev := range cl.Received() {
				if ev.Name == name && len(ev.Args) == 1 && jsclient.Equal(ev.Args[0], payload) {
					found = true
				}
			}
			if !found {
				return fmt.Sprintf("%s (%s)", cl.Name(), cl.node.name)
			}
		}
		return ""
	}
	// The tab is in the room once everyone heard of it; meanwhile its polls
	// keep answering heartbeats.
	joined := map[string]any{"id": b.id, "name": "tab"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if heard("user-connected", joined) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tab's join was not heard by %s", heard("user-connected", joined))
		}
		b.get(context.Background())
	}
	closed := time.Now()
	b.close()
	// Without the abort the node notices only when its heartbeat goes
	// unanswered: up to ping_interval + ping_timeout (6s here).
	waitAll(t, 3*time.Second, "#rtcio:peer-left for a tab closed mid-poll", func() string {
		return heard("#rtcio:peer-left", map[string]any{"id": b.id})
	})
	t.Logf("#rtcio:peer-left for the closed tab heard everywhere %v after it closed", time.Since(closed).Round(time.Millisecond))
}

// poll makes one engine.io long-polling request (a handshake without sid).
func poll(t *testing.T, hc *http.Client, base, sid string) (int, string) {
	t.Helper()
	q := url.Values{"EIO": {"4"}, "transport": {"polling"}}
	if sid != "" {
		q.Set("sid", sid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/socket.io/?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func handshakeSID(t *testing.T, body string) string {
	t.Helper()
	var hs struct {
		SID string `json:"sid"`
	}
	if !strings.HasPrefix(body, "0") || json.Unmarshal([]byte(body[1:]), &hs) != nil || hs.SID == "" {
		t.Fatalf("not an engine.io handshake: %q", body)
	}
	return hs.SID
}

// TestPollingNeedsStickySessions shows what the cookie is for: through
// haproxy.cfg a session's next poll reaches its node (the SERVERID cookie
// names it); through the same file without the cookie it reaches the other
// node, which answers 400 "Session ID unknown", and a polling
// socket.io-client never gets connected.
func TestPollingNeedsStickySessions(t *testing.T) {
	sticky := startCluster(t, "haproxy.cfg", "")
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Jar: jar}
	code, body := poll(t, hc, sticky.lb.url(), "")
	sid := handshakeSID(t, body)
	u, _ := url.Parse(sticky.lb.url())
	var server string
	for _, ck := range jar.Cookies(u) {
		if ck.Name == "SERVERID" {
			server = ck.Value
		}
	}
	if code != 200 || !slices.Contains([]string{"node1", "node2"}, server) {
		t.Fatalf("handshake through haproxy.cfg: %d, SERVERID=%q", code, server)
	}
	// The session's next request: a long poll, answered with the first
	// heartbeat ping after ping_interval.
	if code, body := poll(t, hc, sticky.lb.url(), sid); code != 200 || body != "2" {
		t.Fatalf("poll with SERVERID=%s: %d %q, want 200 with a ping", server, code, body)
	}

	loose := startHAProxy(t, needHAProxy(t), unsticky(t), sticky.nodes...)
	hc = &http.Client{} // no cookies, and none would be set
	code, body = poll(t, hc, loose.url(), "")
	if code != 200 {
		t.Fatalf("handshake without stickiness: %d %s", code, body)
	}
	sid = handshakeSID(t, body)
	code, body = poll(t, hc, loose.url(), sid)
	if code != http.StatusBadRequest || !strings.Contains(body, "Session ID unknown") {
		t.Fatalf("poll on the other node: %d %s, want 400 Session ID unknown", code, body)
	}

	js := jsclient.Start(t)
	cl := js.Connect("polling", loose.url(), map[string]any{
		"transports": []string{"polling"}, "withCredentials": true, "reconnectionDelay": 100, "reconnectionDelayMax": 200,
	}).WithT(t)
	for i := 0; i < 3; i++ {
		if e := cl.WaitConnectError(); e.Type != "TransportError" {
			t.Fatalf("connect error %d: %+v, want a TransportError", i+1, e)
		}
	}
	if cl.Connected() {
		t.Fatal("a polling client connected without sticky sessions")
	}
}

// checkRoom has every client join one room at once (they are on both
// nodes) and checks that each hears user-connected of every other exactly
// once and that each pair gets exactly one #rtcio:init-offer.
func checkRoom(t *testing.T, clients []*client) {
	t.Helper()
	for _, cl := range clients {
		cl.Emit("join-room", map[string]any{"roomId": "lb", "name": cl.Name()})
	}
	byID := indexByID(clients)
	unheard := func(cl *client) string {
		heard := map[string]bool{}
		for _, ev := range cl.Received() {
			if ev.Name == "user-connected" && len(ev.Args) == 1 {
				if m, ok := ev.Args[0].(map[string]any); ok {
					id, _ := m["id"].(string)
					heard[id] = true
				}
			}
		}
		for _, other := range clients {
			if other != cl && !heard[other.sid] {
				return fmt.Sprintf("%s (%s) did not hear of %s (%s)", cl.Name(), cl.node.name, other.Name(), other.node.name)
			}
		}
		return ""
	}
	waitAll(t, 10*time.Second, "every client heard user-connected of every other", func() string {
		for _, cl := range clients {
			if m := unheard(cl); m != "" {
				return m
			}
		}
		return ""
	})
	time.Sleep(500 * time.Millisecond) // for duplicates to show up
	offers := map[[2]string]int{}      // {receiver, source}
	for _, cl := range clients {
		users := map[string]int{}
		for _, ev := range cl.Received() {
			var m map[string]any
			if len(ev.Args) > 0 {
				m, _ = ev.Args[0].(map[string]any)
			}
			switch ev.Name {
			case "user-connected":
				id, _ := m["id"].(string)
				users[id]++
				if other := byID[id]; other == nil || m["name"] != other.Name() {
					t.Errorf("%s: %s: not a client of this room", cl.Name(), ev)
				}
			case "#rtcio:init-offer":
				src, _ := m["source"].(string)
				offers[[2]string{cl.sid, src}]++
			}
		}
		for id, n := range users {
			if n != 1 {
				t.Errorf("%s heard user-connected of %s %d times", cl.Name(), id, n)
			}
		}
	}
	for i, a := range clients {
		for _, b := range clients[i+1:] {
			if n := offers[[2]string{a.sid, b.sid}] + offers[[2]string{b.sid, a.sid}]; n != 1 {
				t.Errorf("%s (%s) and %s (%s): %d #rtcio:init-offer between them, want 1",
					a.Name(), a.node.name, b.Name(), b.node.name, n)
			}
		}
	}
}

// checkRelays sends #rtcio:message from every client to every other and
// checks that each arrives once, with source stamped.
func checkRelays(t *testing.T, clients []*client) {
	t.Helper()
	byID := indexByID(clients)
	for _, a := range clients {
		for _, b := range clients {
			if a != b {
				a.Emit("#rtcio:message", map[string]any{"target": b.sid, "data": map[string]any{"from": a.Name()}})
			}
		}
	}
	relayed := func(to *client, from *client) int {
		n := 0
		want := map[string]any{"target": to.sid, "source": from.sid, "data": map[string]any{"from": from.Name()}}
		for _, ev := range to.Received() {
			if ev.Name == "#rtcio:message" && len(ev.Args) == 1 && jsclient.Equal(ev.Args[0], want) {
				n++
			}
		}
		return n
	}
	waitAll(t, 10*time.Second, "every relay arrived", func() string {
		for _, a := range clients {
			for _, b := range clients {
				if a != b && relayed(b, a) == 0 {
					return fmt.Sprintf("%s (%s) -> %s (%s)", a.Name(), a.node.name, b.Name(), b.node.name)
				}
			}
		}
		return ""
	})
	for _, a := range clients {
		for _, b := range clients {
			if a != b && relayed(b, a) != 1 {
				t.Errorf("%s got the relay of %s %d times", b.Name(), a.Name(), relayed(b, a))
			}
		}
		for _, ev := range a.Received() {
			if ev.Name == "#rtcio:message" {
				var m map[string]any
				if len(ev.Args) > 0 {
					m, _ = ev.Args[0].(map[string]any)
				}
				if byID[fmt.Sprint(m["source"])] == nil || m["target"] != a.sid {
					t.Errorf("%s: unexpected relay %s", a.Name(), ev)
				}
			}
		}
	}
}

func indexByID(clients []*client) map[string]*client {
	m := map[string]*client{}
	for _, cl := range clients {
		m[cl.sid] = cl
	}
	return m
}
