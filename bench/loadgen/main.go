// Command loadgen runs the side-by-side benchmark of bench/: it starts
// rtcio-router, the Node reference server and the trivial echo server in
// turn, each pinned to the same core, drives the scenarios of package load
// against each for several rounds, and prints the medians and the ratio
// router/Node for every figure as Markdown tables. The generator is this
// process: bench/run.sh pins it to another core.
//
// It is a program rather than a script so that the numbers come from one
// clock and one client implementation for every server.
//
//	loadgen [flags]                  the suite (see -h)
//	loadgen echo -addr HOST:PORT     serve the echo server (started by the suite)
//	loadgen profsplit [MESSAGES]     a CPU profile's layers (profsplit.go)
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rtcio/rtcio-router/bench/load"
	"github.com/rtcio/rtcio-router/bench/sio"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "echo" {
		if err := serveEcho(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen echo:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "profsplit" {
		runProfSplit(os.Args[2:])
		return
	}
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(64)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, cfg)
	if res != nil {
		if cfg.cluster {
			reportCluster(os.Stdout, cfg, res)
		} else if cfg.scale > 0 {
			reportScale(os.Stdout, cfg, res)
		} else {
			report(os.Stdout, cfg, res)
		}
		if cfg.jsonOut != "" {
			b, err := json.MarshalIndent(res, "", " ")
			if err == nil {
				err = os.WriteFile(cfg.jsonOut, b, 0o644)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "loadgen: -json:", err)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// serveEcho is the echo server's process: it serves sio.Echo until killed.
func serveEcho(args []string) error {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:3001", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", sio.NewEcho())
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

// config is the suite's settings, from flags.
type config struct {
	routerBin, rulesFile, nodeScript, nodeBin string
	uwsScript                                 string // the Node reference on uWebSockets.js
	rounds                                    int
	quick                                     bool
	sizes                                     []int
	serverCPU                                 string
	relayRate, fanoutRate                     float64
	relayPairs, relayWindow                   int
	reloadEvery                               time.Duration
	timing                                    load.Timing
	settle                                    time.Duration
	fanSizes                                  []int
	skipEcho                                  bool
	servers                                   map[string]bool
	jsonOut, logDir                           string
	benchRules                                string // rulesFile with the relay limit off, written by run

	// cluster runs the cluster suite (cluster.go) instead of the default
	// one: one node against two nodes on one Redis, and Node's join storm.
	cluster    bool
	redisBin   string
	stormSizes []int // the cluster suite's join storms, sockets
	memSockets int   // the cluster suite's Redis memory scenario, sockets
	clusterSDP bool  // also the 4 KB SDP in the cluster suite
	// clusterRuns are the cluster suite's scenario groups to run: storm,
	// rtt, max, memory.
	clusterRuns map[string]bool

	// releaseWait is when, after every connection of the idle scenario's
	// largest size closed, the server's RSS is read the second time (the
	// first is at +5 s).
	releaseWait time.Duration

	// scale runs the scale suite (scale.go) instead of the default one:
	// this many idle sockets from scaleSources local addresses, and
	// scalePairs relay pairs among them at relayRate.
	scale        int
	scalePairs   int
	scaleSources int

	// variants are routers run with environment settings, named
	// "router+KEY=VALUE+...", e.g. router+GOGC=off: a tuning step is
	// measured against the default in the same alternating rounds.
	variants []string

	// runs are the default suite's scenario groups to run (idle, storm,
	// rtt, max, fanout, reload), envelopes the relayed payloads: a
	// profile or a tuning step measures one figure for longer.
	runs      map[string]bool
	envelopes []load.Envelope
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&c.routerBin, "router", "bin/rtcio-router", "rtcio-router binary")
	fs.StringVar(&c.rulesFile, "rules", "rtcio.yaml", "the router's rules (the built-in rtcio.yaml); run with the relay limit off (load.BenchRules) and reloaded on SIGHUP in the reload scenario")
	fs.StringVar(&c.nodeScript, "node", "bench/node/server.js", "the Node reference server")
	fs.StringVar(&c.uwsScript, "node-uws", "", "the Node reference on uWebSockets.js (default: server-uws.js beside -node)")
	fs.StringVar(&c.nodeBin, "node-bin", "node", "node executable")
	fs.IntVar(&c.rounds, "rounds", 3, "rounds; each runs every server once, alternating which goes first")
	fs.BoolVar(&c.quick, "quick", false, "smoke run: 1 round, small socket counts, short windows")
	sizes := fs.String("sizes", "1000,5000,19000", "socket counts for the idle and join storm scenarios (the scaling table)")
	fs.StringVar(&c.serverCPU, "server-cpu", "1", "cpu list (taskset -c) every server runs on; empty: no pinning")
	fs.Float64Var(&c.relayRate, "relay-rate", 4000, "offered relay rate for the round-trip figures, msgs/s")
	fs.Float64Var(&c.fanoutRate, "fanout-rate", 2000, "offered fan-out rate for the latency figures, deliveries/s")
	fs.IntVar(&c.relayPairs, "pairs", 16, "socket pairs in the relay scenarios")
	fs.IntVar(&c.relayWindow, "window", 16, "pings in flight per pair when saturating the relay")
	fs.DurationVar(&c.reloadEvery, "reload-every", 100*time.Millisecond, "SIGHUP interval in the router's reload scenario")
	fanSizes := fs.String("fanout-sizes", "2,8,32", "room sizes of the fan-out scenarios")
	fs.BoolVar(&c.skipEcho, "no-echo", false, "skip the echo server (the generator's ceiling)")
	servers := fs.String("servers", "echo,router,node,uws", "which servers to run: echo, router, node (Node socket.io 4), uws (the same on uWebSockets.js), router+KEY=VALUE[+...] (the router with those environment variables, e.g. router+GOGC=off); cluster in the cluster suite")
	fs.DurationVar(&c.releaseWait, "release-wait", time.Minute, "after the largest idle size's sockets close, read the server's RSS 5 s later and once more this long after they closed")
	fs.IntVar(&c.scale, "scale", 0, "the scale suite instead: this many idle sockets (e.g. 50000; capped by the open-file limit), from several loopback source addresses, with -scale-pairs relay pairs among them at -relay-rate; -servers defaults to router,node,uws")
	runsFlag := fs.String("runs", "idle,storm,rtt,max,fanout,reload", "the default suite's scenario groups: idle (RSS per socket), storm (join storm), rtt (relay round trips at -relay-rate), max (relay saturated), fanout, reload (router only)")
	envs := fs.String("envelopes", "candidate,sdp", "relayed payloads: candidate (200 B), sdp (4 KB)")
	measure := fs.Duration("measure", 0, "measured window of the relay and fan-out scenarios (default 4s, 1s with -quick)")
	fs.IntVar(&c.scalePairs, "scale-pairs", 100, "relay pairs active among the scale suite's idle sockets")
	fs.IntVar(&c.scaleSources, "scale-sources", 0, "local source addresses of the scale suite, 127.0.0.2 and up (0: one per 10,000 sockets, well inside one address's ~28k ephemeral ports)")
	fs.StringVar(&c.jsonOut, "json", "", "also write every raw figure to this file")
	fs.StringVar(&c.logDir, "logs", "", "directory for the servers' logs (default: a temporary one)")
	fs.BoolVar(&c.cluster, "cluster", false, "the cluster suite instead: one router node against two nodes on one Redis (relay across nodes, join storm, Redis commands and memory), Node's join storm beside them; -relay-rate defaults to 1000 and -servers to router,cluster,node")
	fs.StringVar(&c.redisBin, "redis-server", "redis-server", "redis-server executable (the cluster suite)")
	stormSizes := fs.String("cluster-sizes", "1000", "socket counts of the cluster suite's join storms (rooms of 4)")
	fs.IntVar(&c.memSockets, "mem-sockets", 10000, "sockets of the cluster suite's Redis memory scenario (rooms of 4)")
	fs.BoolVar(&c.clusterSDP, "cluster-sdp", true, "the cluster suite also relays 4 KB SDPs")
	runs := fs.String("cluster-runs", "storm,rtt,max,memory", "the cluster suite's scenario groups: storm (join storm), rtt (relay round trips at -relay-rate), max (relay saturated), memory (Redis memory, first round only)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.cluster {
		if !flagSet(fs, "relay-rate") {
			c.relayRate = 1000
		}
		if !flagSet(fs, "servers") {
			*servers = "router,cluster,node"
		}
		if c.quick && !flagSet(fs, "mem-sockets") {
			c.memSockets = 2000
		}
	}
	if c.scale > 0 && !flagSet(fs, "servers") {
		*servers = "router,node,uws"
	}
	if c.uwsScript == "" {
		c.uwsScript = filepath.Join(filepath.Dir(c.nodeScript), "server-uws.js")
	}
	c.timing, c.settle = load.Timing{Warmup: time.Second, Measure: 4 * time.Second}, 2*time.Second
	if c.quick {
		c.timing, c.settle = load.Timing{Warmup: 300 * time.Millisecond, Measure: time.Second}, 500*time.Millisecond
		if !flagSet(fs, "rounds") {
			c.rounds = 1
		}
		if !flagSet(fs, "sizes") {
			*sizes = "400,2000"
		}
		if !flagSet(fs, "release-wait") {
			c.releaseWait = 10 * time.Second
		}
	}
	if *measure > 0 {
		c.timing.Measure = *measure
	}
	c.runs = map[string]bool{}
	for _, r := range strings.Split(*runsFlag, ",") {
		c.runs[strings.TrimSpace(r)] = true
	}
	for _, e := range strings.Split(*envs, ",") {
		switch strings.TrimSpace(e) {
		case "candidate":
			c.envelopes = append(c.envelopes, load.Candidate)
		case "sdp":
			c.envelopes = append(c.envelopes, load.SDP)
		default:
			return c, fmt.Errorf("-envelopes: unknown %q", e)
		}
	}
	c.clusterRuns = map[string]bool{}
	for _, r := range strings.Split(*runs, ",") {
		c.clusterRuns[strings.TrimSpace(r)] = true
	}
	c.servers = map[string]bool{}
	for _, s := range strings.Split(*servers, ",") {
		s = strings.TrimSpace(s)
		c.servers[s] = true
		if strings.HasPrefix(s, "router+") {
			c.variants = append(c.variants, s)
		}
	}
	if c.skipEcho {
		delete(c.servers, "echo")
	}
	var err error
	if c.sizes, err = ints(*sizes); err != nil {
		return c, fmt.Errorf("-sizes: %w", err)
	}
	if c.fanSizes, err = ints(*fanSizes); err != nil {
		return c, fmt.Errorf("-fanout-sizes: %w", err)
	}
	if c.stormSizes, err = ints(*stormSizes); err != nil {
		return c, fmt.Errorf("-cluster-sizes: %w", err)
	}
	if c.memSockets%4 != 0 {
		return c, fmt.Errorf("-mem-sockets: %d is not a multiple of 4 (rooms of 4)", c.memSockets)
	}
	for _, n := range append(slices.Clone(c.sizes), c.stormSizes...) {
		if n%4 != 0 {
			return c, fmt.Errorf("-sizes: %d is not a multiple of 4 (rooms of 4)", n)
		}
	}
	if c.rounds < 1 {
		return c, fmt.Errorf("-rounds must be at least 1")
	}
	return c, nil
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}
