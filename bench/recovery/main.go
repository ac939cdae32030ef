// Command recovery measures connection state recovery across the nodes of
// a cluster (server.recovery with cluster: set), the figures of the
// "Recovery across nodes" table in bench/README.md:
//
//   - what a suspended session costs Redis (used_memory and the MEMORY
//     USAGE of its keys, over -sessions sessions, and per missed event),
//     and what a connected socket costs with recovery on and off;
//   - how long a client whose node stopped takes to get its session back
//     on the other node (p50/p99 over -sessions sessions), the node stopped
//     with SIGTERM and with SIGKILL;
//   - what recovery costs each relayed message in a cluster: the relay
//     round trip across nodes, its server CPU and Redis commands, with
//     recovery on and off, alternating for -rounds rounds.
//
// It starts its own redis-server and two rtcio-router nodes (from -router,
// or built from this checkout) for each scenario, on 127.0.0.1 only, and
// prints a Markdown table. The load generator is this process; it is not
// pinned to a core, so run it on a quiet machine and note the load.
//
//	go run ./bench/recovery [-sessions 1000] [-rounds 3]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	rtcio "github.com/rtcio/rtcio-router"
	"github.com/rtcio/rtcio-router/bench/load"
)

type config struct {
	router, redis string
	sessions      int
	missed        int
	rounds        int
	pairs         int
	rate          float64
	timing        load.Timing
	dir           string // logs and rules
}

func main() {
	var c config
	fs := flag.NewFlagSet("recovery", flag.ExitOnError)
	fs.StringVar(&c.router, "router", "", "rtcio-router binary (default: go build ./cmd/rtcio-router into a temporary directory)")
	fs.StringVar(&c.redis, "redis-server", "redis-server", "redis-server executable")
	fs.IntVar(&c.sessions, "sessions", 1000, "sessions suspended (memory) and recovered (per stop)")
	fs.IntVar(&c.missed, "missed", 50, "relays kept for each suspended session (memory): Redis allocates a stream 4 KiB at a time, so a few would measure the allocation, not the events")
	fs.IntVar(&c.rounds, "rounds", 3, "rounds of the relay with recovery on and off")
	fs.IntVar(&c.pairs, "relay-pairs", 50, "relay pairs, each across the two nodes")
	fs.Float64Var(&c.rate, "relay-rate", 1000, "relay messages per second (pings and pongs)")
	fs.DurationVar(&c.timing.Warmup, "warmup", 2*time.Second, "relay warm-up, discarded")
	fs.DurationVar(&c.timing.Measure, "measure", 10*time.Second, "relay measured window")
	only := fs.String("only", "memory,sigterm,sigkill,relay", "scenarios to run")
	_ = fs.Parse(os.Args[1:])

	var err error
	if c.dir, err = os.MkdirTemp("", "rtcio-recovery-bench"); err != nil {
		fail(err)
	}
	if c.router == "" {
		c.router = filepath.Join(c.dir, "rtcio-router")
		fmt.Fprintln(os.Stderr, "recovery: go build ./cmd/rtcio-router")
		if out, err := exec.Command("go", "build", "-o", c.router, "./cmd/rtcio-router").CombinedOutput(); err != nil {
			fail(fmt.Errorf("go build: %v\n%s", err, out))
		}
	}
	fmt.Fprintf(os.Stderr, "recovery: logs in %s\n", c.dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	var rows [][3]string // figure, unit, value
	add := func(figs []load.Figure) {
		for _, f := range figs {
			rows = append(rows, [3]string{f.Key, f.Unit, strconv.FormatFloat(f.Value, 'f', 1, 64)})
		}
	}
	run := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		run[s] = true
	}
	if run["memory"] {
		for _, rec := range []bool{false, true} {
			add(c.with(ctx, fmt.Sprintf("memory-connected-recovery-%v", rec), rec, func(cl *cluster) ([]load.Figure, error) {
				return load.PairsMemory(ctx, cl.target(), c.sessions, rec)
			}))
		}
		add(c.with(ctx, "memory", true, func(cl *cluster) ([]load.Figure, error) {
			return load.SuspendedMemory(ctx, cl.target(), c.sessions, c.missed)
		}))
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		name := map[syscall.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGKILL: "SIGKILL"}[sig]
		if !run[strings.ToLower(name)] {
			continue
		}
		add(c.with(ctx, "recover-"+name, true, func(cl *cluster) ([]load.Figure, error) {
			return load.RecoverElsewhere(ctx, cl.target(), c.sessions, name, func() error { return cl.nodes[0].stop(sig) })
		}))
	}
	if run["relay"] {
		rows = append(rows, c.relay(ctx)...)
	}
	fmt.Printf("| figure | unit | value |\n|---|---|--:|\n")
	for _, r := range rows {
		fmt.Printf("| %s | %s | %s |\n", r[0], r[1], r[2])
	}
}

// relay runs the cross-node relay with recovery off and on, alternating,
// and returns each figure's median per setting with their ratio.
func (c config) relay(ctx context.Context) [][3]string {
	got := map[bool]map[string][]float64{false: {}, true: {}}
	units := map[string]string{}
	var keys []string
	for round := range c.rounds {
		for _, rec := range []bool{round%2 == 1, round%2 == 0} {
			figs := c.with(ctx, fmt.Sprintf("relay-recovery-%v-%d", rec, round+1), rec, func(cl *cluster) ([]load.Figure, error) {
				return load.Relay(ctx, cl.target(), c.pairs, load.Candidate, c.rate, c.timing, nil, 0)
			})
			for _, f := range figs {
				if !slices.Contains(keys, f.Key) {
					keys = append(keys, f.Key)
				}
				units[f.Key] = f.Unit
				got[rec][f.Key] = append(got[rec][f.Key], f.Value)
			}
		}
	}
	var rows [][3]string
	for _, k := range keys {
		off, on := median(got[false][k]), median(got[true][k])
		v := fmt.Sprintf("off %.1f, on %.1f", off, on)
		if off != 0 {
			v += fmt.Sprintf(" (%.2f×)", on/off)
		}
		rows = append(rows, [3]string{"cluster " + k + ", recovery off vs on (medians of " + strconv.Itoa(c.rounds) + ")", units[k], v})
	}
	return rows
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// with runs one scenario on a fresh cluster (recovery on or off), exiting
// on failure: a figure measured on a broken run is not a figure.
func (c config) with(ctx context.Context, label string, recovery bool, f func(*cluster) ([]load.Figure, error)) []load.Figure {
	fmt.Fprintf(os.Stderr, "recovery: %s\n", label)
	cl, err := c.start(label, recovery)
	if err != nil {
		fail(fmt.Errorf("%s: %w", label, err))
	}
	defer cl.stop()
	figs, err := f(cl)
	if err != nil {
		fail(fmt.Errorf("%s: %w", label, err))
	}
	for _, fg := range figs {
		fmt.Fprintf(os.Stderr, "  %s: %.1f %s\n", fg.Key, fg.Value, fg.Unit)
	}
	return figs
}

// proc is one process of a cluster.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	url  string // a node's base URL
}

func (c config) spawn(label string, argv ...string) (*proc, error) {
	logf, err := os.Create(filepath.Join(c.dir, label+".log"))
	if err != nil {
		return nil, err
	}
	p := &proc{cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { _ = p.cmd.Wait(); logf.Close(); close(p.done) }()
	return p, nil
}

// stop sends sig and waits for the process to exit (killing it after 30s).
func (p *proc) stop(sig syscall.Signal) error {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return nil
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return errors.New("did not exit within 30s")
	}
}

// cluster is a redis-server and two router nodes on it.
type cluster struct {
	redis     *proc
	redisAddr string
	nodes     []*proc
}

func (cl *cluster) target() load.Target {
	t := load.Target{URL: cl.nodes[0].url, PID: cl.nodes[0].cmd.Process.Pid, Redis: cl.redisAddr,
		Others: []load.Proc{{PID: cl.nodes[1].cmd.Process.Pid}, {Name: "Redis", PID: cl.redis.cmd.Process.Pid}}}
	for _, n := range cl.nodes {
		t.Nodes = append(t.Nodes, n.url)
	}
	return t
}

func (cl *cluster) stop() {
	for _, n := range cl.nodes {
		_ = n.stop(syscall.SIGTERM)
	}
	if cl.redis != nil {
		_ = cl.redis.stop(syscall.SIGTERM)
	}
}

// rules are the built-in rules as the benchmarks run them (load.BenchRules)
// with a recovery window long enough for every scenario, or none.
func rules(recovery bool) ([]byte, error) {
	src := string(load.BenchRules(rtcio.DefaultRules))
	if !recovery {
		return []byte(src), nil
	}
	const at = "  ping_timeout: 20s\n"
	if !strings.Contains(src, at) {
		return nil, fmt.Errorf("the built-in rules no longer contain %q", at)
	}
	return []byte(strings.Replace(src, at, at+"  recovery: 5m\n", 1)), nil
}

func (c config) start(label string, recovery bool) (*cluster, error) {
	src, err := rules(recovery)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(c.dir, label+".yaml")
	if err := os.WriteFile(path, src, 0o644); err != nil {
		return nil, err
	}
	cl := &cluster{}
	port, err := load.FreePort()
	if err != nil {
		return nil, err
	}
	cl.redisAddr = "127.0.0.1:" + strconv.Itoa(port)
	if cl.redis, err = c.spawn(label+"-redis", c.redis, "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no", "--dir", c.dir); err != nil {
		return nil, err
	}
	if err := waitFor(10*time.Second, func() error { _, err := load.RedisCommands(cl.redisAddr); return err }); err != nil {
		cl.stop()
		return nil, fmt.Errorf("redis-server: %w", err)
	}
	for i := range 2 {
		port, err := load.FreePort()
		if err != nil {
			cl.stop()
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		n, err := c.spawn(fmt.Sprintf("%s-node%d", label, i+1), c.router, "-c", path, "--addr", addr,
			"--redis", "redis://"+cl.redisAddr+"/0", "--log-level", "warn")
		if err != nil {
			cl.stop()
			return nil, err
		}
		n.url = "http://" + addr
		cl.nodes = append(cl.nodes, n)
		if err := waitFor(15*time.Second, func() error { return healthy(n.url) }); err != nil {
			cl.stop()
			return nil, fmt.Errorf("node%d: %w", i+1, err)
		}
	}
	return cl, nil
}

func healthy(base string) error {
	resp, err := http.Get(base + "/health")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return errors.New(resp.Status)
	}
	return nil
}

// waitFor retries f every 20ms until it succeeds or d passes.
func waitFor(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "recovery:", err)
	os.Exit(1)
}
