// Command memidle measures what one idle WebSocket connection costs
// rtcio-router in memory, and who holds it (issue 14). It starts the real
// binary pinned to a core, with its profiles on (metrics.pprof) and the
// heap sampled finely (GODEBUG=memprofilerate), opens N idle sockets with
// the load generator's client, and prints Markdown: resident memory per
// socket as the bench's idle scenario measures it, the same after a
// collection, the Go runtime's accounts (heap, stacks, metadata, free
// pages kept), the live heap by owner (engine.io and socket.io objects of
// the library, gorilla's connection, net/http's leftovers, the router's
// own state, ...), goroutines per socket and where they wait, and finally
// how much memory is given back within a minute of closing every socket.
//
//	go run ./bench/memidle                 10,000 sockets, server on core 1
//	go run ./bench/memidle -n 5000 -cpu "" -stacks 20
//
// Why a separate process and not an in-process benchmark: RSS is the
// figure the issue compares with Node, and only a process of its own has
// an RSS that is the server's alone.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rtcio/rtcio-router/bench/load"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "memidle:", err)
		os.Exit(1)
	}
}

type config struct {
	bin     string
	rules   string
	n       int
	cpu     string
	settle  time.Duration
	after   time.Duration
	rate    int
	stacks  int
	env     []string
	keepLog bool
}

func run(args []string, out io.Writer) error {
	var c config
	fs := flag.NewFlagSet("memidle", flag.ContinueOnError)
	fs.StringVar(&c.bin, "router", "", "rtcio-router binary (default: built from ./cmd/rtcio-router into a temporary directory)")
	fs.StringVar(&c.rules, "rules", "rtcio.yaml", "the router's rules; a metrics section with pprof is added")
	fs.IntVar(&c.n, "n", 10000, "idle sockets")
	fs.StringVar(&c.cpu, "cpu", "1", "cpu list (taskset -c) for the server; empty: no pinning")
	fs.DurationVar(&c.settle, "settle", 2*time.Second, "pause after the last socket connected before RSS is read (the bench's idle scenario uses 2s)")
	fs.DurationVar(&c.after, "after", time.Minute, "how long RSS is followed after every socket closed")
	fs.IntVar(&c.rate, "memprofilerate", 4096, "the server's runtime.MemProfileRate: one heap sample per this many bytes")
	fs.IntVar(&c.stacks, "stacks", 0, "also list the top allocation stacks per socket")
	envs := fs.String("env", "", "extra environment for the server, comma-separated (e.g. GOGC=50,GOMEMLIMIT=1GiB)")
	fs.BoolVar(&c.keepLog, "log", false, "show the server's log on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *envs != "" {
		c.env = strings.Split(*envs, ",")
	}
	if c.n < 1 {
		return errors.New("-n must be positive")
	}
	tmp, err := os.MkdirTemp("", "memidle")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if c.bin == "" {
		c.bin = filepath.Join(tmp, "rtcio-router")
		build := exec.Command("go", "build", "-o", c.bin, "./cmd/rtcio-router")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build rtcio-router (run from the repository root): %w", err)
		}
	}
	raiseFileLimit()
	s, err := startServer(c, tmp)
	if err != nil {
		return err
	}
	defer s.stop()
	m, err := measure(c, s)
	if err != nil {
		return err
	}
	m.report(out, c)
	return nil
}

// server is the router under measurement.
type server struct {
	cmd   *exec.Cmd
	url   string // the socket.io server, http://127.0.0.1:port
	pprof string // http://127.0.0.1:port/debug/pprof
}

// loopbackAddr is a free 127.0.0.1:port for a listener of the server.
func loopbackAddr() (string, error) {
	port, err := load.FreePort()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", port), nil
}

func startServer(c config, dir string) (*server, error) {
	src, err := os.ReadFile(c.rules)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	addr, err := loopbackAddr()
	if err != nil {
		return nil, err
	}
	maddr, err := loopbackAddr()
	if err != nil {
		return nil, err
	}
	src = append(append(src, '\n'), fmt.Sprintf("\n# memidle: profiles for the measurement.\nmetrics:\n  listen: %q\n  pprof: true\n", maddr)...)
	rules := filepath.Join(dir, "rtcio.yaml")
	if err := os.WriteFile(rules, src, 0o600); err != nil {
		return nil, err
	}
	argv := []string{c.bin, "-c", rules, "--addr", addr, "--log-level", "warn"}
	if c.cpu != "" {
		if _, err := exec.LookPath("taskset"); err == nil {
			argv = append([]string{"taskset", "-c", c.cpu}, argv...)
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	godebug := fmt.Sprintf("memprofilerate=%d", c.rate)
	if g := os.Getenv("GODEBUG"); g != "" {
		godebug = g + "," + godebug
	}
	cmd.Env = append(append(os.Environ(), "GODEBUG="+godebug), c.env...)
	if c.keepLog {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, url: "http://" + addr, pprof: "http://" + maddr + "/debug/pprof"}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if resp, err := http.Get(s.url + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, errors.New("the router did not answer /health within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// pid is the router's, under taskset (which execs it, keeping the pid).
func (s *server) pid() int { return s.cmd.Process.Pid }

// snapshot is the server's state at one point.
type snapshot struct {
	rss        int64 // VmRSS, bytes
	goroutines int
	groups     []goroutineGroup
	heap       *heapProfile
	rssGC      int64 // VmRSS right after the profile's collection
}

func take(s *server) (snapshot, error) {
	var sn snapshot
	var err error
	if sn.rss, err = load.RSS(s.pid()); err != nil {
		return sn, err
	}
	if sn.goroutines, sn.groups, err = readGoroutines(s.pprof); err != nil {
		return sn, err
	}
	if sn.heap, err = readHeap(s.pprof); err != nil {
		return sn, err
	}
	sn.rssGC, err = load.RSS(s.pid())
	return sn, err
}

// measurement is everything report prints.
type measurement struct {
	n             int
	before, after snapshot
	connectTook   time.Duration
	closed        []rssPoint // after every socket closed
	// left is the state at the end of the close window: what a server
	// keeps after its clients are gone.
	left snapshot
}

type rssPoint struct {
	at  time.Duration
	rss int64
}

func measure(c config, s *server) (*measurement, error) {
	m := &measurement{n: c.n}
	var err error
	if m.before, err = take(s); err != nil {
		return nil, fmt.Errorf("before: %w", err)
	}
	ctx := context.Background()
	start := time.Now()
	conns, err := load.DialIdle(ctx, s.url, c.n)
	if err != nil {
		return nil, err
	}
	m.connectTook = time.Since(start)
	time.Sleep(c.settle)
	if m.after, err = take(s); err != nil {
		load.CloseAll(conns)
		return nil, fmt.Errorf("after: %w", err)
	}
	closedAt := time.Now()
	load.CloseAll(conns)
	for _, at := range []time.Duration{time.Second, 5 * time.Second, 10 * time.Second, 20 * time.Second, 30 * time.Second, 45 * time.Second, time.Minute, 2 * time.Minute} {
		if at > c.after {
			break
		}
		time.Sleep(time.Until(closedAt.Add(at)))
		rss, err := load.RSS(s.pid())
		if err != nil {
			return nil, err
		}
		m.closed = append(m.closed, rssPoint{at, rss})
	}
	if m.left, err = take(s); err != nil {
		return nil, fmt.Errorf("after close: %w", err)
	}
	return m, nil
}

// raiseFileLimit takes the hard limit: every socket is a descriptor here
// and in the server (which inherits the limit).
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}
