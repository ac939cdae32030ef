// Package cluster tests examples/cluster: two rtcio-router nodes sharing a
// Redis, behind HAProxy configured by the example's own haproxy.cfg, driven
// by the official socket.io-client (internal/jsclient) over long-polling,
// polling-then-WebSocket and WebSocket-only transports; rolling_test.go
// restarts the nodes under a live room with recovery on. The processes are
// internal/clustertest's.
//
// haproxy must be on PATH (Debian: apt-get install haproxy; scripts/test.sh
// installs it), as must redis-server, node and npm. Without haproxy the
// tests are skipped, unless CI is "true": CI must never pass by skipping.
package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/clustertest"
	"github.com/rtcio/rtcio-router/internal/jsclient"
)

func TestMain(m *testing.M) { os.Exit(clustertest.RunMain(m)) }

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
	kind string            // its entry in kinds
	sid  string            // its first session id
	node *clustertest.Node // the node that session is on
}

// TestStickyCluster drives clients of every transport through HAProxy:
// they connect, upgrade, are spread over both nodes, stay connected over
// several heartbeats, talk across nodes, and move to the other node when
// theirs goes away.
func TestStickyCluster(t *testing.T) {
	c := clustertest.Start(t, "haproxy.cfg", "")
	js := jsclient.Start(t)

	var clients []*client
	for i := 0; i < 2; i++ {
		for _, k := range kinds {
			opts := map[string]any{"reconnectionDelay": 200, "reconnectionDelayMax": 1000}
			for key, v := range k.opts {
				opts[key] = v
			}
			name := fmt.Sprintf("%s-%d", k.name, i+1)
			jc := js.Connect(name, c.LB.URL(), opts).WithT(t)
			cl := &client{Client: jc, kind: k.name, sid: jc.WaitConnected()}
			// An upgrade is a request on its own connection: it reaches
			// the node holding the session only by the cookie.
			jc.WaitTransport(k.transport)
			cl.node = c.NodeOf(t, cl.sid)
			clients = append(clients, cl)
		}
	}
	connectedAt := time.Now()
	t.Logf("%d clients connected", len(clients))

	// (b) The load balancer spread them.
	perNode := map[*clustertest.Node][]string{}
	for _, cl := range clients {
		perNode[cl.node] = append(perNode[cl.node], cl.Name())
	}
	for _, n := range c.Nodes {
		t.Logf("%s: %v", n.Name, perNode[n])
		if len(perNode[n]) == 0 {
			t.Errorf("no client on %s: HAProxy did not spread the connections", n.Name)
		}
		if st := c.LB.Server(t, n.Name); st["stot"] == "0" {
			t.Errorf("HAProxy's stats show no session on %s: %v", n.Name, st)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// (a) Everyone stays connected, on the same session, over several
	// heartbeats: polls, POSTs and the upgraded WebSockets all pass
	// HAProxy to the right node.
	if hold := 4*clustertest.PingInterval - time.Since(connectedAt); hold > 0 {
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
	gone := c.Nodes[1]
	var moved []*client
	for _, cl := range clients {
		if cl.node == gone {
			moved = append(moved, cl)
		}
	}
	gone.Terminate(t)
	t.Log("node2 exited")
	clustertest.Eventually(t, 15*time.Second, "the clients of node2 reconnected", func() string {
		for _, cl := range moved {
			if !cl.Connected() || cl.ID() == cl.sid {
				return fmt.Sprintf("%s (connected=%v)", cl.Name(), cl.Connected())
			}
		}
		return ""
	})
	t.Log("node2's clients reconnected")
	for _, cl := range moved {
		if n := c.NodeOf(t, cl.ID()); n != c.Nodes[0] {
			t.Errorf("%s reconnected to %s", cl.Name(), n.Name)
		}
		if got := cl.Transport(); got != transportOf(cl.kind) && cl.kind != "upgrade" {
			t.Errorf("%s: transport %q after reconnecting", cl.Name(), got)
		}
	}
	clustertest.Eventually(t, 10*time.Second, "HAProxy marked node2 DOWN", func() string {
		if st := c.LB.Server(t, "node2")["status"]; !strings.HasPrefix(st, "DOWN") {
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
				cl.Name(), cl.kind, cl.Connected(), cl.ID(), cl.sid, cl.node.Name)
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
func checkTabClose(t *testing.T, c *clustertest.Cluster, clients []*client) {
	t.Helper()
	b := openTab(t, c.LB.URL(), "lb", "tab")
	heard := func(name string, payload map[string]any) string {
		for _, cl := range clients {
			found := false
			for _, ev := range cl.Received() {
				if ev.Name == name && len(ev.Args) == 1 && jsclient.Equal(ev.Args[0], payload) {
					found = true
				}
			}
			if !found {
				return fmt.Sprintf("%s (%s)", cl.Name(), cl.node.Name)
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
	clustertest.Eventually(t, 3*time.Second, "#rtcio:peer-left for a tab closed mid-poll", func() string {
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
	sticky := clustertest.Start(t, "haproxy.cfg", "")
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Jar: jar}
	code, body := poll(t, hc, sticky.LB.URL(), "")
	sid := handshakeSID(t, body)
	u, _ := url.Parse(sticky.LB.URL())
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
	if code, body := poll(t, hc, sticky.LB.URL(), sid); code != 200 || body != "2" {
		t.Fatalf("poll with SERVERID=%s: %d %q, want 200 with a ping", server, code, body)
	}

	loose := clustertest.StartHAProxy(t, clustertest.NeedHAProxy(t), unsticky(t), sticky.Nodes...)
	hc = &http.Client{} // no cookies, and none would be set
	code, body = poll(t, hc, loose.URL(), "")
	if code != 200 {
		t.Fatalf("handshake without stickiness: %d %s", code, body)
	}
	sid = handshakeSID(t, body)
	code, body = poll(t, hc, loose.URL(), sid)
	if code != http.StatusBadRequest || !strings.Contains(body, "Session ID unknown") {
		t.Fatalf("poll on the other node: %d %s, want 400 Session ID unknown", code, body)
	}

	js := jsclient.Start(t)
	cl := js.Connect("polling", loose.URL(), map[string]any{
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
				return fmt.Sprintf("%s (%s) did not hear of %s (%s)", cl.Name(), cl.node.Name, other.Name(), other.node.Name)
			}
		}
		return ""
	}
	clustertest.Eventually(t, 10*time.Second, "every client heard user-connected of every other", func() string {
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
					a.Name(), a.node.Name, b.Name(), b.node.Name, n)
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
	clustertest.Eventually(t, 10*time.Second, "every relay arrived", func() string {
		for _, a := range clients {
			for _, b := range clients {
				if a != b && relayed(b, a) == 0 {
					return fmt.Sprintf("%s (%s) -> %s (%s)", a.Name(), a.node.Name, b.Name(), b.node.Name)
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
