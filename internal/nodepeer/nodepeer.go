// Package nodepeer runs a Node script that tests drive over a line-JSON
// protocol on stdin/stdout: the Node side of the cluster's interop tests
// (the Redis emitter, a socket.io server with the Redis adapter), shared by
// the tests of several packages.
//
// The protocol: the script prints {"type":"ready"} once; each command
// written to its stdin carries an "id" that its one reply repeats (with
// "ok" and, on failure, "error"); any other line is a message for the
// test (OnMessage). Closing stdin asks the script to finish.
package nodepeer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/internal/npmdeps"
)

// Peer is one running script.
type Peer struct {
	cmd       *exec.Cmd
	stdin     io.WriteCloser
	done      chan struct{}
	onMessage func(m map[string]any, line []byte)

	errMu  sync.Mutex
	stderr bytes.Buffer

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan map[string]any
}

// Start installs dir's npm packages (npmdeps) and runs `node script
// args...` there, returning once it is ready; it is stopped when t ends.
// onMessage gets every line that is neither a reply nor the ready line, on
// the reading goroutine. Without node or npm the test is skipped, unless
// CI is "true": CI must not pass by skipping.
func Start(t *testing.T, dir, script string, args []string, onMessage func(m map[string]any, line []byte)) *Peer {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = exec.LookPath("npm")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node and npm are required for the Node interop tests: %v", err)
		}
		t.Skipf("node or npm not on PATH: %v", err)
	}
	if err := npmdeps.Ensure(dir); err != nil {
		t.Fatal(err)
	}
	p := &Peer{done: make(chan struct{}), onMessage: onMessage, pending: map[int64]chan map[string]any{}}
	p.cmd = exec.Command(node, append([]string{script}, args...)...)
	p.cmd.Dir = dir
	p.cmd.Stderr = writerFunc(func(b []byte) (int, error) {
		p.errMu.Lock()
		defer p.errMu.Unlock()
		return p.stderr.Write(b)
	})
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	ready := make(chan struct{})
	go p.read(stdout, ready)
	t.Cleanup(func() {
		_ = p.stdin.Close() // the script closes its sockets and clients on EOF
		select {
		case <-p.done:
		case <-time.After(3 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", script, p.Stderr())
		}
	})
	select {
	case <-ready:
	case <-p.done:
		t.Fatalf("%s exited before it was ready: %s", script, p.Stderr())
	case <-time.After(15 * time.Second):
		t.Fatalf("%s not ready after 15s: %s", script, p.Stderr())
	}
	return p
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// Stderr is what the script printed on stderr so far.
func (p *Peer) Stderr() string {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.stderr.String()
}

// Done is closed when the script has exited.
func (p *Peer) Done() <-chan struct{} { return p.done }

func (p *Peer) read(stdout io.Reader, ready chan struct{}) {
	defer close(p.done)
	r := bufio.NewReader(stdout)
	for {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			p.dispatch(line, ready)
		}
		if err != nil {
			_ = p.cmd.Wait()
			return
		}
	}
}

func (p *Peer) dispatch(line []byte, ready chan struct{}) {
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		return // not ours (a library printing to stdout)
	}
	if id, ok := m["id"].(float64); ok {
		p.mu.Lock()
		ch := p.pending[int64(id)]
		delete(p.pending, int64(id))
		p.mu.Unlock()
		if ch != nil {
			ch <- m
		}
		return
	}
	if m["type"] == "ready" {
		close(ready)
		return
	}
	if p.onMessage != nil {
		p.onMessage(m, line)
	}
}

// Call sends cmd and returns its reply, failing t on an error reply, the
// script's exit, or no reply within timeout.
func (p *Peer) Call(t testing.TB, timeout time.Duration, cmd map[string]any) map[string]any {
	t.Helper()
	p.mu.Lock()
	p.nextID++
	id := p.nextID
	ch := make(chan map[string]any, 1)
	p.pending[id] = ch
	p.mu.Unlock()
	cmd["id"] = id
	line, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.stdin.Write(append(line, '\n')); err != nil {
		t.Fatalf("node peer: write %s: %v", line, err)
	}
	select {
	case m := <-ch:
		if m["ok"] != true {
			t.Fatalf("node peer: %s: %v", line, m["error"])
		}
		return m
	case <-p.done:
		t.Fatalf("node peer exited during %s: %s", line, p.Stderr())
	case <-time.After(timeout):
		t.Fatalf("node peer: no reply to %s within %v", line, timeout)
	}
	return nil
}
