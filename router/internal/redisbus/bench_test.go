package redisbus

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/rtcio/rtcio-router/internal/redistest"
	"github.com/vmihailenco/msgpack/v5"
)

// signal is an argument shaped like the router's traffic (an SDP relayed
// between peers) whose msgpack encoding is about size bytes.
func signal(size int) map[string]any {
	return map[string]any{"type": "offer", "to": "Xk3j9sQeLm0AAAB1", "sdp": strings.Repeat("a", size-40)}
}

var sizes = []struct {
	name string
	n    int
}{{"200B", 200}, {"4KB", 4096}}

// BenchmarkRoundTrip is one broadcast from Publish on one bus to the handler
// of another through a real redis-server, one at a time: the latency and the
// allocations (both ends and go-redis) a relayed message costs.
func BenchmarkRoundTrip(b *testing.B) {
	srv := redistest.Start(b)
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			got := make(chan struct{}, 1)
			pub, err := New(newClient(b, srv.Addr), Options{})
			if err != nil {
				b.Fatal(err)
			}
			sub, err := New(newClient(b, srv.Addr), Options{OnBroadcast: func(Broadcast) { got <- struct{}{} }})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if err := sub.Start(ctx); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = sub.Close() })
			br := Broadcast{Rooms: []string{"room-1"}, Except: []string{"Xk3j9sQeLm0AAAB1"}, Event: "#rtcio:message", Args: []any{signal(sz.n)}}
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := pub.Publish(ctx, br); err != nil {
					b.Fatal(err)
				}
				<-got
			}
		})
	}
}

// BenchmarkEncode and BenchmarkDecode split the round trip's CPU and
// allocations between the two ends, without Redis.
func BenchmarkEncode(b *testing.B) {
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			br := Broadcast{Rooms: []string{"room-1"}, Event: "#rtcio:message", Args: []any{signal(sz.n)}}
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			for b.Loop() {
				e := getEncoder()
				if err := encodeBroadcast(e.enc, "uid", "/", &br, br.Rooms, nil); err != nil {
					b.Fatal(err)
				}
				putEncoder(e)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			br := Broadcast{Rooms: []string{"room-1"}, Event: "#rtcio:message", Args: []any{signal(sz.n)}}
			var buf bytes.Buffer
			if err := encodeBroadcast(msgpack.NewEncoder(&buf), "uid", "/", &br, br.Rooms, nil); err != nil {
				b.Fatal(err)
			}
			payload := buf.String()
			d := newDecoder()
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeBroadcast(d, payload, "me", "/"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
