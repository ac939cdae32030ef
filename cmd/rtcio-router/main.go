// Command rtcio-router runs the rtcio-router signaling server: a socket.io
// v4 server whose events are declared in rtcio.yaml.
//
//	rtcio-router [-c rtcio.yaml] [--addr host:port] [--redis URL] [--demo]   serve
//	rtcio-router check [-c rtcio.yaml]                validate and summarise
//	rtcio-router test [FILE|DIR ...]                  run config tests (*.test.yaml)
//	rtcio-router schema                               print the JSON Schema of rtcio.yaml
//	rtcio-router --version
//
// This file holds flags, logging, signals and exit codes; all behaviour
// lives in the rules and router packages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	rtcio "github.com/rtcio/rtcio-router"
	"github.com/rtcio/rtcio-router/configtest"
	"github.com/rtcio/rtcio-router/demo"
	"github.com/rtcio/rtcio-router/router"
	"github.com/rtcio/rtcio-router/rules"
)

// Exit codes, so scripts can tell a bad file from a failure to serve.
const (
	exitOK        = 0
	exitFailure   = 1 // could not start or serve
	exitBadConfig = 2 // the rules file has errors
	exitUsage     = 64
)

// version is set at build time with -ldflags "-X main.version=…"; without
// it the module version from the build info is used.
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("rtcio-router", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		config    = fs.String("c", "", "rules file (default ./rtcio.yaml, else the built-in rules)")
		addr      = fs.String("addr", "", "listen address, overriding PORT and server.listen")
		redisURL  = fs.String("redis", "", "Redis URL of the cluster to join, overriding REDIS_URL and cluster.redis")
		logLevel  = fs.String("log-level", "info", "debug, info, warn or error")
		logFormat = fs.String("log-format", "auto", "text, json, or auto (text on a terminal)")
		showVer   = fs.Bool("version", false, "print the version and exit")
		watch     = fs.Bool("watch", false, "reload when the rules file changes on disk, as SIGHUP does")
		demoPage  = fs.Bool("demo", false, "also serve the demo video-call page at /demo/ (try the server with two browser tabs)")
	)
	fs.StringVar(config, "config", "", "same as -c")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rtcio-router [serve] [-c FILE] [--addr HOST:PORT] [--redis URL] [--demo] [--watch] [--log-level L] [--log-format F]")
		fmt.Fprintln(stderr, "       rtcio-router check [-c FILE]")
		fmt.Fprintln(stderr, "       rtcio-router test [FILE|DIR ...]   (default: .)")
		fmt.Fprintln(stderr, "       rtcio-router schema                (JSON Schema of rtcio.yaml)")
		fmt.Fprintln(stderr, "       rtcio-router --version")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *showVer {
		fmt.Fprintln(stdout, "rtcio-router", versionString())
		return exitOK
	}
	switch cmd {
	case "test":
		return runTests(fs.Args(), stdout, stderr)
	case "schema":
		if _, err := stdout.Write(rules.JSONSchema()); err != nil {
			return exitFailure
		}
		return exitOK
	}
	log, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	name, src, err := rulesSource(*config)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitBadConfig
	}
	switch cmd {
	case "check":
		return check(name, src, stdout, stderr)
	case "serve":
		return serve(name, src, *addr, clusterURL(*redisURL), *watch, *demoPage, log)
	default:
		fmt.Fprintf(stderr, "unknown command %q\n", cmd)
		fs.Usage()
		return exitUsage
	}
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}

// rulesSource picks the rules file: -c, else ./rtcio.yaml, else the copy
// built into the binary. src is nil when the file should be read (and
// re-read on reload) from name.
func rulesSource(flagPath string) (name string, src []byte, err error) {
	if flagPath != "" {
		if _, err := os.Stat(flagPath); err != nil {
			return "", nil, fmt.Errorf("rules file: %w", err)
		}
		return flagPath, nil, nil
	}
	if _, err := os.Stat("rtcio.yaml"); err == nil {
		return "rtcio.yaml", nil, nil
	}
	return rtcio.DefaultRulesName, rtcio.DefaultRules, nil
}

func check(name string, src []byte, stdout, stderr io.Writer) int {
	var set *rules.Set
	var err error
	if src != nil {
		set, err = rules.Parse(name, src, rules.Options{})
	} else {
		set, err = rules.Load(name, rules.Options{})
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		var errs rules.Errors
		if errors.As(err, &errs) {
			fmt.Fprintf(stderr, "%d error(s)\n", len(errs))
		}
		return exitBadConfig
	}
	for _, line := range set.Summary() {
		fmt.Fprintln(stdout, line)
	}
	fmt.Fprintf(stdout, "ok: %s: %d rules\n", name, set.Len())
	return exitOK
}

// runTests runs config tests and prints one line per test, the failures in
// full, and a closing count.
func runTests(paths []string, stdout, stderr io.Writer) int {
	if len(paths) == 0 {
		paths = []string{"."}
	}
	files, err := configtest.Find(paths)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitBadConfig
	}
	if len(files) == 0 {
		fmt.Fprintf(stderr, "no *.test.yaml files in %s\n", strings.Join(paths, " "))
		return exitBadConfig
	}
	passed, failed, broken := 0, 0, 0
	for _, f := range files {
		results, err := configtest.RunFile(f)
		if err != nil {
			fmt.Fprintln(stderr, err)
			broken++
			continue
		}
		for _, r := range results {
			if r.Passed() {
				passed++
				fmt.Fprintf(stdout, "ok    %s: %s\n", r.File, r.Name)
				continue
			}
			failed++
			fmt.Fprintf(stdout, "FAIL  %s:%d: %s\n%s\n", r.File, r.Line, r.Name, indent(r.Failure))
		}
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	switch {
	case broken > 0:
		return exitBadConfig
	case failed > 0:
		return exitFailure
	}
	return exitOK
}

func indent(s string) string {
	return "      " + strings.ReplaceAll(s, "\n", "\n      ")
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text, json or auto, got %q", format)
}

// listenAddr applies the overrides in order: --addr, then PORT, then the
// file's server.listen.
func listenAddr(flagAddr, fileAddr string) string {
	if flagAddr != "" {
		return flagAddr
	}
	if port := os.Getenv("PORT"); port != "" {
		return ":" + port
	}
	return fileAddr
}

// clusterURL applies the overrides of cluster.redis in order: --redis,
// then REDIS_URL; "" leaves the file's.
func clusterURL(flagURL string) string {
	if flagURL != "" {
		return flagURL
	}
	return os.Getenv("REDIS_URL")
}

func serve(name string, src []byte, flagAddr, redisURL string, watch, demoPage bool, log *slog.Logger) int {
	if redisURL != "" {
		if err := rules.CheckRedisURL(redisURL); err != nil {
			log.Error("bad Redis URL", "err", err)
			fmt.Fprintln(os.Stderr, "redis:", err)
			return exitUsage
		}
	}
	rt, err := router.New(router.Options{RulesFile: name, Source: src, Logger: log, Redis: redisURL, Version: versionString()})
	if errors.Is(err, router.ErrCluster) {
		log.Error("cannot join the cluster", "err", err)
		fmt.Fprintln(os.Stderr, err)
		return exitFailure
	}
	if err != nil {
		log.Error("rules rejected", "file", name, "err", err)
		fmt.Fprintln(os.Stderr, err)
		return exitBadConfig
	}
	addr := listenAddr(flagAddr, rt.Rules().Server.Listen)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Error("cannot listen", "addr", addr, "err", err)
		return exitFailure
	}
	// The router's server carries the header, body and idle timeouts sized
	// from the rules' heartbeat settings (router.Router.HTTPServer).
	srv := rt.HTTPServer()
	srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	if demoPage {
		srv.Handler = demo.Mount(srv.Handler)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "file", name, "rules", rt.Rules().Len(), "version", versionString())
	msrv, err := serveMetrics(rt, log, served)
	if err != nil {
		log.Error("cannot listen for metrics", "addr", rt.Rules().Metrics.Listen, "err", err)
		_ = srv.Close()
		return exitFailure
	}
	if demoPage {
		logDemo(log, ln.Addr())
	}

	// One goroutine (this one) owns reloads. SIGHUP and --watch feed one
	// channel that holds a single pending request, so a burst of signals
	// or writes coalesces into at most one more reload.
	reload := make(chan struct{}, 1)
	hup := make(chan os.Signal, 1)
	stop := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	ctx, cancelWatch := context.WithCancel(context.Background())
	defer cancelWatch()
	go reclaimAfterDrops(ctx, rt.SocketsPeak, log)
	if watch && src == nil {
		go watchFile(ctx, name, 250*time.Millisecond, 300*time.Millisecond, reload)
		log.Info("watching the rules file", "file", name)
	}
	for {
		select {
		case err := <-served:
			log.Error("server stopped", "err", err)
			return exitFailure
		case <-reload:
			if src != nil {
				log.Warn("reload ignored: running the built-in rules; start with -c FILE to reload")
				continue
			}
			if err := rt.Reload(); err != nil {
				log.Error("reload rejected; keeping the previous rules", "err", err)
			}
		case sig := <-stop:
			log.Info("shutting down", "signal", sig.String())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			rt.Drain()
			if err := rt.Close(ctx); err != nil {
				log.Warn("close", "err", err)
			}
			if err := srv.Shutdown(ctx); err != nil {
				log.Warn("http shutdown", "err", err)
			}
			if msrv != nil {
				_ = msrv.Shutdown(ctx)
			}
			cancel()
			return exitOK
		}
	}
}

// serveMetrics listens on metrics.listen, when set, and serves the
// metrics (and the profiles, with metrics.pprof) there; a failure to
// serve ends up on served, like the main server's. Nil when there is no
// such listener.
func serveMetrics(rt *router.Router, log *slog.Logger, served chan<- error) (*http.Server, error) {
	h := rt.MetricsHandler()
	if h == nil {
		return nil, nil
	}
	ms := rt.Rules().Metrics
	ln, err := net.Listen("tcp", ms.Listen)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			served <- fmt.Errorf("metrics: %w", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String(), "path", ms.Path, "pprof", ms.Pprof)
	return srv, nil
}

// logDemo prints the demo page's URL, with localhost for a wildcard address:
// browsers allow the camera only on https or localhost, so that is the URL
// that works as printed. It warns when the socket.io client is not installed.
func logDemo(log *slog.Logger, addr net.Addr) {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	url := "http://" + net.JoinHostPort(host, port) + demo.Path
	if _, err := demo.ClientBundle(); err != nil {
		log.Warn("demo page: "+err.Error(), "url", url)
		return
	}
	log.Info("demo page: open this URL in two browser tabs", "url", url)
}
