package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rtcio/rtcio-router/bench/load"
	"github.com/rtcio/rtcio-router/bench/sio"
)

// results holds every figure of every round: Values[server][key] has one
// entry per round that produced it. Keys keeps first-seen order for the
// tables.
type results struct {
	Keys   []string
	Units  map[string]string
	Lower  map[string]bool
	Values map[string]map[string][]float64
	Errors []string
	Notes  []string // said above the tables: what ran other than asked
}

func (r *results) add(server string, figs []load.Figure) {
	for _, f := range figs {
		if _, ok := r.Units[f.Key]; !ok {
			r.Keys = append(r.Keys, f.Key)
			r.Units[f.Key], r.Lower[f.Key] = f.Unit, f.Lower
		}
		if r.Values[server] == nil {
			r.Values[server] = map[string][]float64{}
		}
		r.Values[server][f.Key] = append(r.Values[server][f.Key], f.Value)
	}
}

// proc is one server process under test. A cluster ("cluster") is its
// first node; the other node and Redis are extra, and stop with it.
type proc struct {
	kind, url, log string
	cmd            *exec.Cmd
	done           chan struct{}
	extra          []*proc
	nodes          []string // the cluster's nodes' URLs
	redis          string   // the cluster's Redis, host:port
	redisPID       int
}

// start launches a server of the given kind ("router", "node", "echo") on
// a fresh port, pinned to the server core, and waits until it completes a
// socket.io handshake.
func (c config) start(ctx context.Context, kind string, seq int) (*proc, error) {
	if kind == "cluster" {
		return c.startCluster(ctx, seq)
	}
	return c.startOne(ctx, kind, kind, seq, "")
}

// startCluster starts a private redis-server (persistence off, as the
// tests run it) and clusterNodes router nodes on it, all on the server
// core, and waits until every node completes a handshake.
func (c config) startCluster(ctx context.Context, seq int) (*proc, error) {
	port, err := load.FreePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	argv := []string{c.redisBin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
		"--dir", c.logDir, "--daemonize", "no", "--protected-mode", "yes"}
	rd, err := c.spawn("redis", "cluster-redis", argv, os.Environ(), seq)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err = load.RedisCommands(addr); err == nil {
			break
		}
		select {
		case <-rd.done:
			return nil, fmt.Errorf("redis-server exited at start-up (log %s)", rd.log)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			rd.stop()
			return nil, fmt.Errorf("redis-server not ready after 10s: %v (log %s)", err, rd.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var nodes []*proc
	stopAll := func() {
		for _, n := range nodes {
			n.stop()
		}
		rd.stop()
	}
	for i := range clusterNodes {
		n, err := c.startOne(ctx, "router", fmt.Sprintf("cluster-node%d", i+1), seq, "redis://"+addr+"/0")
		if err != nil {
			stopAll()
			return nil, err
		}
		nodes = append(nodes, n)
	}
	p := nodes[0]
	p.kind, p.redis, p.redisPID = "cluster", addr, rd.cmd.Process.Pid
	p.extra = append(nodes[1:], rd)
	for _, n := range nodes {
		p.nodes = append(p.nodes, n.url)
	}
	return p, nil
}

// clusterNodes is the number of router nodes of a cluster.
const clusterNodes = 2

// spawn starts argv pinned to the server core, its output in the log
// directory.
func (c config) spawn(kind, label string, argv, env []string, seq int) (*proc, error) {
	if c.serverCPU != "" {
		argv = append([]string{"taskset", "-c", c.serverCPU}, argv...)
	}
	logf, err := os.Create(filepath.Join(c.logDir, fmt.Sprintf("%03d-%s.log", seq, label)))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &proc{kind: kind, log: logf.Name(), cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	return p, nil
}

// startOne starts one server; a router joins the cluster on redisURL if
// it is not "".
func (c config) startOne(ctx context.Context, kind, label string, seq int, redisURL string) (*proc, error) {
	port, err := load.FreePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var argv []string
	env := os.Environ()
	// A variant's settings come last, so they win over the generator's own.
	kind, settings, _ := strings.Cut(kind, "+")
	if settings != "" {
		env = append(env, strings.Split(settings, "+")...)
	}
	switch kind {
	case "router":
		argv = []string{c.routerBin, "--addr", addr, "-c", c.benchRules}
		if redisURL != "" {
			argv = append(argv, "--redis", redisURL)
		}
	case "node", "uws":
		script := c.nodeScript
		if kind == "uws" {
			script = c.uwsScript
		}
		argv = []string{c.nodeBin, script}
		env = append(env, "PORT="+strconv.Itoa(port))
	case "echo":
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		argv = []string{exe, "echo", "-addr", addr}
	default:
		return nil, fmt.Errorf("unknown server %q", kind)
	}
	p, err := c.spawn(kind, label, argv, env, seq)
	if err != nil {
		return nil, err
	}
	p.url = "http://" + addr
	logPath := p.log
	deadline := time.Now().Add(20 * time.Second)
	for {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := sio.Dial(dctx, p.url)
		cancel()
		if err == nil {
			_ = conn.Close()
			break
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited at start-up (log %s): %s", kind, logPath, logTail(logPath))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			return nil, fmt.Errorf("%s not ready after 20s: %v (log %s)", kind, err, logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Let the start-up garbage settle before anyone reads RSS.
	time.Sleep(500 * time.Millisecond)
	return p, nil
}

// logTail is the end of a server's log, one line, for an error message:
// why it did not start (a missing npm package, a port taken).
func logTail(path string) string {
	b, _ := os.ReadFile(path)
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "…" + s[len(s)-600:]
	}
	return strings.ReplaceAll(s, "\n", " | ")
}

func (p *proc) target() load.Target {
	t := load.Target{URL: p.url, PID: p.cmd.Process.Pid, Nodes: p.nodes, Redis: p.redis}
	for _, x := range p.extra {
		name := ""
		if x.kind == "redis" {
			name = "Redis"
		}
		t.Others = append(t.Others, load.Proc{Name: name, PID: x.cmd.Process.Pid})
	}
	return t
}

// stop kills the server: its figures are taken, and a graceful shutdown of
// 20k sockets would only add minutes. A cluster's nodes go first, then its
// Redis.
func (p *proc) stop() {
	_ = p.cmd.Process.Kill()
	<-p.done
	for _, x := range p.extra {
		x.stop()
	}
}

// run executes every round and returns what was measured, even on error.
func run(ctx context.Context, c config) (*results, error) {
	if c.logDir == "" {
		d, err := os.MkdirTemp("", "rtcio-bench-")
		if err != nil {
			return nil, err
		}
		c.logDir = d
	} else if err := os.MkdirAll(c.logDir, 0o755); err != nil {
		return nil, err
	}
	src, err := os.ReadFile(c.rulesFile)
	if err != nil {
		return nil, err
	}
	c.benchRules = filepath.Join(c.logDir, "rtcio-bench.yaml")
	if err := os.WriteFile(c.benchRules, load.BenchRules(src), 0o644); err != nil {
		return nil, err
	}
	res := &results{Units: map[string]string{}, Lower: map[string]bool{}, Values: map[string]map[string][]float64{}}
	if c.cluster {
		fmt.Fprintf(os.Stderr, "loadgen: cluster suite, %d round(s), join storms %v, Redis memory %d sockets, server cpu %q, logs in %s\n", c.rounds, c.stormSizes, c.memSockets, c.serverCPU, c.logDir)
	} else if c.scale == 0 {
		fmt.Fprintf(os.Stderr, "loadgen: %d round(s), sizes %v, server cpu %q, logs in %s\n", c.rounds, c.sizes, c.serverCPU, c.logDir)
	} else {
		fmt.Fprintf(os.Stderr, "loadgen: scale suite, %d round(s), server cpu %q, logs in %s\n", c.rounds, c.serverCPU, c.logDir)
	}
	seq := 0
	if c.cluster {
		return res, runCluster(ctx, c, res, &seq)
	}
	if c.scale > 0 {
		return res, runScale(ctx, c, res, &seq)
	}
	for round := 1; round <= c.rounds; round++ {
		order := append([]string{"echo"}, rotate(round, append([]string{"router", "node", "uws"}, c.variants...)...)...)
		for _, kind := range order {
			if !c.servers[kind] {
				continue
			}
			s := suite{c: c, res: res, kind: kind, round: round, seq: &seq}
			s.all(ctx)
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
		}
	}
	if len(res.Errors) > 0 {
		return res, fmt.Errorf("%d scenario(s) failed:\n  %s", len(res.Errors), strings.Join(res.Errors, "\n  "))
	}
	return res, nil
}

// rotate is the order in which a round runs the servers: each round starts
// one later, so no server always follows the same one (a predecessor's
// TIME_WAIT sockets and page cache are not always the same one's).
func rotate(round int, kinds ...string) []string {
	k := (round - 1) % len(kinds)
	return append(slices.Clone(kinds[k:]), kinds[:k]...)
}

// suite runs every scenario against one server kind for one round.
type suite struct {
	c     config
	res   *results
	kind  string
	round int
	seq   *int
}

// with starts a fresh server, runs f against it, records the figures and
// stops the server.
func (s suite) with(ctx context.Context, what string, f func(p *proc) ([]load.Figure, error)) {
	if ctx.Err() != nil {
		return
	}
	*s.seq++
	p, err := s.c.start(ctx, s.kind, *s.seq)
	if err == nil {
		var figs []load.Figure
		figs, err = f(p)
		p.stop()
		s.res.add(s.kind, figs)
		for _, fg := range figs {
			fmt.Fprintf(os.Stderr, "  round %d %-6s %s = %.4g %s\n", s.round, s.kind, fg.Key, fg.Value, fg.Unit)
		}
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		msg := fmt.Sprintf("round %d %s %s: %v", s.round, s.kind, what, err)
		fmt.Fprintln(os.Stderr, "  FAILED", msg)
		s.res.Errors = append(s.res.Errors, msg)
	}
}

// steps runs scenarios in order against one server, stopping at the first
// error.
func steps(fs ...func() ([]load.Figure, error)) ([]load.Figure, error) {
	var all []load.Figure
	for _, f := range fs {
		figs, err := f()
		all = append(all, figs...)
		if err != nil {
			return all, err
		}
	}
	return all, nil
}

func (s suite) all(ctx context.Context) {
	c := s.c
	if s.kind != "echo" && c.runs["idle"] { // the echo server's memory says nothing
		for i, n := range c.sizes {
			s.with(ctx, "idle", func(p *proc) ([]load.Figure, error) {
				if i == len(c.sizes)-1 { // the largest: also what is left after
					return load.IdleRelease(ctx, p.target(), n, c.settle, c.releaseWait)
				}
				return load.Idle(ctx, p.target(), n, c.settle)
			})
		}
	}
	for _, n := range c.sizes {
		if !c.runs["storm"] {
			break
		}
		s.with(ctx, "join storm", func(p *proc) ([]load.Figure, error) {
			return load.JoinStorm(ctx, p.target(), n/4, 4)
		})
	}
	s.with(ctx, "relay and fan-out", func(p *proc) ([]load.Figure, error) {
		t := p.target()
		var fs []func() ([]load.Figure, error)
		for _, env := range c.envelopes {
			if !c.runs["rtt"] {
				break
			}
			fs = append(fs, func() ([]load.Figure, error) {
				return load.Relay(ctx, t, c.relayPairs, env, c.relayRate, c.timing, nil, 0)
			})
		}
		for _, env := range c.envelopes {
			if !c.runs["max"] {
				break
			}
			fs = append(fs, func() ([]load.Figure, error) {
				return load.RelayMax(ctx, t, c.relayPairs, c.relayWindow, env, c.timing)
			})
		}
		for _, size := range c.fanSizes {
			if !c.runs["fanout"] {
				break
			}
			fs = append(fs, func() ([]load.Figure, error) {
				return load.FanOut(ctx, t, fanRooms(size), size, c.fanoutRate, c.timing)
			})
		}
		for _, size := range c.fanSizes {
			if !c.runs["fanout"] {
				break
			}
			fs = append(fs, func() ([]load.Figure, error) {
				return load.FanOutMax(ctx, t, fanRooms(size), size, 4, c.timing)
			})
		}
		return steps(fs...)
	})
	if s.kind == "router" && c.runs["reload"] {
		s.with(ctx, "reload under load", func(p *proc) ([]load.Figure, error) {
			var sent atomic.Int64
			hup := func() {
				if p.cmd.Process.Signal(syscall.SIGHUP) == nil {
					sent.Add(1)
				}
			}
			figs, err := load.Relay(ctx, p.target(), c.relayPairs, load.Candidate, c.relayRate, c.timing, hup, c.reloadEvery)
			for i := range figs {
				figs[i].Key = reloadPrefix(c) + figs[i].Key
			}
			time.Sleep(300 * time.Millisecond) // the last reload's log line
			b, _ := os.ReadFile(p.log)
			applied := strings.Count(string(b), "rules reloaded")
			figs = append(figs, load.Figure{Key: reloadPrefix(c) + "reloads applied / SIGHUPs sent", Unit: "%",
				Value: 100 * float64(applied) / float64(max(sent.Load(), 1))})
			if err == nil && applied == 0 {
				err = fmt.Errorf("no reload was applied (%d SIGHUPs sent; log %s)", sent.Load(), p.log)
			}
			return figs, err
		})
	}
}

// fanRooms keeps about 64 sockets in every fan-out scenario.
func fanRooms(size int) int { return max(1, 64/size) }

func reloadPrefix(c config) string {
	return fmt.Sprintf("reload (SIGHUP every %v): ", c.reloadEvery)
}
