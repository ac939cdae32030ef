//go:build linux

package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/rtcio/rtcio-router/bench/sio"
)

// The experiment speaks enough socket.io for the generator's client:
// handshake, CONNECT, events, and a heartbeat that keeps an answering
// client and drops a silent one.
func TestLeanSessions(t *testing.T) {
	srv, err := newServer(time.Second, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go srv.serveConn(c)
		}
	}()
	url := "http://" + ln.Addr().String()
	ctx := context.Background()
	live, err := sio.Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	served := make(chan error, 1)
	go func() { served <- live.Serve(func([]byte) {}) }() // answers pings
	silent, err := sio.Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	if live.ID == "" || live.ID == silent.ID {
		t.Fatalf("socket ids %q and %q", live.ID, silent.ID)
	}
	for range 3 {
		if err := live.Write(sio.Event("hello", []byte(`{"a":1}`))); err != nil {
			t.Fatal(err)
		}
	}
	// The silent client reads nothing, so it never answers its ping: the
	// server closes it after pingInterval + pingTimeout (2s here), while
	// the live one stays.
	for deadline := time.Now().Add(20 * time.Second); srv.count() != 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions open 20s later; want the silent one closed", srv.count())
		}
	}
	time.Sleep(3 * time.Second) // another heartbeat for the live one
	if n := srv.count(); n != 1 {
		t.Fatalf("%d sessions open; want the live one", n)
	}
	select {
	case err := <-served:
		t.Fatalf("live client closed: %v", err)
	default:
	}
	if n := srv.events.Load(); n != 3 {
		t.Errorf("events counted: %d, want 3", n)
	}
	// A client that goes away is forgotten.
	live.Close()
	for deadline := time.Now().Add(10 * time.Second); srv.count() != 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions open after the client closed", srv.count())
		}
	}
}
