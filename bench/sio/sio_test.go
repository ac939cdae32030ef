package sio

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestFrames(t *testing.T) {
	f := Event("join-room", []byte(`{"roomId":"r","name":"n"}`))
	if string(f) != `42["join-room",{"roomId":"r","name":"n"}]` {
		t.Fatalf("Event = %s", f)
	}
	if p := Payload(f); string(p) != `{"roomId":"r","name":"n"}` {
		t.Errorf("Payload = %s", p)
	}
	for _, bad := range []string{`42["x"]`, `40{"sid":"a"}`, `42["x",1`, `2`} {
		if p := Payload([]byte(bad)); p != nil {
			t.Errorf("Payload(%s) = %s, want nil", bad, p)
		}
	}
	if string(Event("e", nil)) != `42["e"]` {
		t.Errorf("Event without payload = %s", Event("e", nil))
	}
}

func TestStamp(t *testing.T) {
	s := NewStamp(Event("#rtcio:message", []byte(`{"target":"b","data":{"t":0,"x":"y"}}`)))
	f := s.Build(nil, 1234567890123)
	if string(f) != `42["#rtcio:message",{"target":"b","data":{"t":1234567890123,"x":"y"}}]` {
		t.Fatalf("Build = %s", f)
	}
	// A server may reorder keys; the stamp is still found.
	if v, ok := ReadStamp([]byte(`42["#rtcio:message",{"data":{"x":"y","t":42},"source":"a"}]`)); !ok || v != 42 {
		t.Errorf("ReadStamp = %d, %v", v, ok)
	}
	if _, ok := ReadStamp([]byte(`42["user-connected",{"id":"a"}]`)); ok {
		t.Error("ReadStamp found a stamp in a frame without one")
	}
	// Reusing the buffer must not corrupt the template.
	f = s.Build(f, 7)
	if v, _ := ReadStamp(s.Build(f, 99)); v != 99 {
		t.Errorf("rebuilt stamp = %d", v)
	}
}

// TestEcho: two clients of the echo server see each other join, relay to
// each other by id and hear each other's media-state.
func TestEcho(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", NewEcho())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	url := "http://" + ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.ID == "" || a.ID == b.ID {
		t.Fatalf("ids %q %q", a.ID, b.ID)
	}
	got := map[string]chan string{"a": make(chan string, 16), "b": make(chan string, 16)}
	go func() { _ = a.Serve(func(f []byte) { got["a"] <- "a " + string(f) }) }()
	go func() { _ = b.Serve(func(f []byte) { got["b"] <- "b " + string(f) }) }()
	expect := func(want string) {
		t.Helper()
		select {
		case g := <-got[want[:1]]:
			if g != want {
				t.Fatalf("got %s\nwant %s", g, want)
			}
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", want)
		}
	}
	_ = a.Write(Event("join-room", []byte(`{"roomId":"r","name":"alice"}`)))
	time.Sleep(50 * time.Millisecond) // a is in the room before b joins
	_ = b.Write(Event("join-room", []byte(`{"roomId":"r","name":"bob"}`)))
	expect(`b 42["user-connected",{"id":"` + a.ID + `"}]`)
	expect(`a 42["user-connected",{"id":"` + b.ID + `","name":"bob"}]`)
	expect(`a 42["#rtcio:init-offer",{"source":"` + b.ID + `"}]`)
	relay := Event("#rtcio:message", []byte(`{"source":"`+a.ID+`","target":"`+b.ID+`","data":{"t":1}}`))
	_ = a.Write(relay)
	expect("b " + string(relay))
	media := Event("media-state", []byte(`{"roomId":"r","mic":true,"cam":false,"t":`+strconv.Itoa(5)+`}`))
	_ = b.Write(media)
	expect("a " + string(media))
}

// BenchmarkStampBuild is the generator's per-message send cost outside the
// socket write.
func BenchmarkStampBuild(b *testing.B) {
	s := NewStamp(Event("#rtcio:message", []byte(`{"source":"a","target":"b","data":{"t":0,"candidate":{"candidate":"candidate:1 1 udp 1 192.0.2.1 5000 typ host"}}}`)))
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = s.Build(buf, int64(i))
	}
}

// BenchmarkReadStamp is the generator's per-message receive cost outside
// the socket read.
func BenchmarkReadStamp(b *testing.B) {
	f := []byte(`42["#rtcio:message",{"data":{"candidate":{"candidate":"candidate:1 1 udp 1 192.0.2.1 5000 typ host"},"t":1234567890123},"source":"a","target":"b"}]`)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := ReadStamp(f); !ok {
			b.Fatal("no stamp")
		}
	}
}
