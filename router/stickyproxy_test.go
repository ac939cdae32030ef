package router_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// stickyProxy is a load balancer for tests: each new engine.io session
// (a request without sid) goes to the next node in turn, and every later
// request of a polling session to the node that opened it, as HAProxy's
// cookie or nginx's ip_hash do in production. So the clients of a test
// spread over the nodes by themselves, on every transport.
type stickyProxy struct {
	nodes    []*httputil.ReverseProxy
	next     atomic.Uint64
	mu       sync.Mutex
	sessions map[string]int // engine.io sid -> node
	opened   []int          // sessions opened per node
}

// startStickyProxy serves the proxy on 127.0.0.1 and returns its URL.
func startStickyProxy(t *testing.T, urls []string) string {
	t.Helper()
	p := &stickyProxy{sessions: map[string]int{}, opened: make([]int, len(urls))}
	for i, u := range urls {
		target, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		rp := httputil.NewSingleHostReverseProxy(target)
		node := i
		rp.ModifyResponse = func(resp *http.Response) error { return p.learn(resp, node) }
		p.nodes = append(p.nodes, rp)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		// A test with clients on one node only proved nothing of the cluster.
		p.mu.Lock()
		defer p.mu.Unlock()
		total := 0
		for _, n := range p.opened {
			total += n
		}
		if total >= len(p.opened) {
			for i, n := range p.opened {
				if n == 0 {
					t.Errorf("sticky proxy: node %d served none of the %d sessions", i, total)
				}
			}
		}
	})
	return srv.URL
}

func (p *stickyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	node := -1
	if sid := r.URL.Query().Get("sid"); sid != "" {
		p.mu.Lock()
		if n, ok := p.sessions[sid]; ok {
			node = n
		}
		p.mu.Unlock()
	}
	if node < 0 {
		node = int(p.next.Add(1)-1) % len(p.nodes)
		p.mu.Lock()
		p.opened[node]++
		p.mu.Unlock()
	}
	p.nodes[node].ServeHTTP(w, r)
}

// learn records the session a polling handshake opened on node: its
// answer is the engine.io OPEN packet, `0{"sid":...}`.
func (p *stickyProxy) learn(resp *http.Response, node int) error {
	q := resp.Request.URL.Query()
	if q.Get("sid") != "" || q.Get("transport") != "polling" || resp.StatusCode != http.StatusOK {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	open, ok := strings.CutPrefix(string(body), "0")
	if !ok {
		return nil
	}
	if i := strings.IndexByte(open, '\x1e'); i >= 0 {
		open = open[:i]
	}
	var o struct {
		Sid string `json:"sid"`
	}
	if json.Unmarshal([]byte(open), &o) == nil && o.Sid != "" {
		p.mu.Lock()
		p.sessions[o.Sid] = node
		p.mu.Unlock()
	}
	return nil
}
