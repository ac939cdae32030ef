// Package redistest starts a real, private redis-server for a test.
//
// Why a real server and not an in-process fake: the cluster's guarantees
// rest on Redis semantics that a fake only imitates (Lua scripts running one
// at a time, pub/sub delivery, key expiry), and the Node packages the
// cluster must interoperate with talk to a real server too. Each call starts
// its own process on a fresh port with persistence off, so tests never share
// state and leave nothing behind.
//
// redis-server must be on PATH (Debian: apt-get install redis-server;
// scripts/test.sh installs it). Without it the test is skipped, unless the
// environment variable CI is "true": CI must never pass by skipping.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Server is a running redis-server owned by one test.
type Server struct {
	// Addr is host:port on the loopback interface.
	Addr string
	cmd  *exec.Cmd
	// exited receives the process's exit once (its Wait runs on a
	// goroutine of its own from the start).
	exited chan error
	gone   bool
}

// URL is the server's address as a redis:// URL (database 0).
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Start runs a redis-server for t and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is not installed (apt-get install redis-server); CI must not skip")
		}
		t.Skip("redis-server not on PATH (apt-get install redis-server)")
	}
	dir := t.TempDir()
	// Port 0 is not accepted by redis-server for TCP, so a free port is
	// picked and retried if another process takes it first.
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		s, err := start(bin, dir, port)
		if err == nil {
			t.Cleanup(s.stop)
			return s
		}
		t.Logf("redistest: attempt %d on port %d: %v", attempt+1, port, err)
	}
	t.Fatalf("redistest: redis-server did not start")
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func start(bin, dir string, port int) (*Server, error) {
	cmd := exec.Command(bin,
		"--bind", "127.0.0.1", "--port", fmt.Sprint(port),
		"--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"),
		"--daemonize", "no", "--protected-mode", "yes")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan error, 1)
	s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), cmd: cmd, exited: exited}
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			return nil, fmt.Errorf("redis-server exited: %v: %s", err, lastLines(string(log), 5))
		default:
		}
		if ping(s.Addr) {
			return s, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return nil, fmt.Errorf("redis-server on %s did not answer PING within 10s", s.Addr)
}

// ping sends one inline PING and expects +PONG.
func ping(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// stop kills the process and waits for it to exit. Called from the test's
// goroutine only (Kill, Cleanup).
func (s *Server) stop() {
	if s.gone {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.gone = true
}

// Kill stops the server at once, as a crash would, and returns when the
// process has exited: for tests of what the cluster does when Redis goes
// away.
func (s *Server) Kill() { s.stop() }

// Restart kills the server if it runs and starts a new, empty one on the
// same address, as a Redis restarted without persistence comes back; it
// returns once the new one answers PING.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.stop()
	_, port, _ := strings.Cut(s.Addr, ":")
	var n int
	if _, err := fmt.Sscan(port, &n); err != nil {
		t.Fatalf("redistest: port of %s: %v", s.Addr, err)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	// The old socket may linger for a moment.
	deadline := time.Now().Add(10 * time.Second)
	for {
		next, err := start(bin, t.TempDir(), n)
		if err == nil {
			s.cmd, s.exited, s.gone = next.cmd, next.exited, false
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: restart on %s: %v", s.Addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
