//go:build linux

package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rtcio/rtcio-router/rules"
)

func main() {
	fs := flag.NewFlagSet("leanws", flag.ExitOnError)
	config := fs.String("c", "rtcio.yaml", "rules file: only metrics.listen is used (profiles)")
	addr := fs.String("addr", "127.0.0.1:3001", "listen address")
	_ = fs.String("log-level", "", "ignored (rtcio-router's flag, so bench/memidle can run either)")
	interval := fs.Duration("ping-interval", 25*time.Second, "engine.io pingInterval")
	timeout := fs.Duration("ping-timeout", 20*time.Second, "engine.io pingTimeout")
	_ = fs.Parse(os.Args[1:])

	set, err := rules.Load(*config, rules.Options{})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := newServer(*interval, *timeout)
	if err != nil {
		log.Fatal(err)
	}
	if ms := set.Metrics.Listen; ms != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		go func() { log.Fatal(http.ListenAndServe(ms, mux)) }()
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		os.Exit(0)
	}()
	fmt.Fprintln(os.Stderr, "leanws listening on", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go srv.serveConn(c)
	}
}
