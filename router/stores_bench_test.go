package router

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/rtcio/rtcio-router/internal/redistest"
	"github.com/rtcio/rtcio-router/rules"
)

// storeProbeRules declare three stores and one event whose rule reads one
// entry of one of them: what an event costs in store reads.
const storeProbeRules = `
stores:
  media: { scope: socket }
  hands: { scope: room }
  passwords: { scope: room }
rules:
  - event: probe
    do:
      - ack: stores.media[socket.id]?.mic ?? false
`

// BenchmarkRuleStoreRead applies an event whose rule reads
// stores.media[socket.id], with 300 entries in three stores, on each
// registry. Over Redis it is the round trips (and bytes) each event spends
// on stores.
func BenchmarkRuleStoreRead(b *testing.B) {
	srv := redistest.Start(b)
	impls := []struct {
		name string
		new  func(b *testing.B) registry
	}{
		{"memory", func(*testing.B) registry { return newMemRegistry() }},
		{"redis", func(b *testing.B) registry {
			c := newTestRedisClient(b, srv)
			if err := c.FlushDB(context.Background()).Err(); err != nil {
				b.Fatal(err)
			}
			return newTestRedisRegistry(b, c, "A")
		}},
	}
	for _, impl := range impls {
		b.Run(impl.name, func(b *testing.B) {
			r := &Router{log: slog.New(slog.NewTextHandler(io.Discard, nil)), st: newState()}
			r.st.wire = &countingWire{}
			r.st.registry = impl.new(b)
			set, err := rules.Parse("probe.yaml", []byte(storeProbeRules), rules.Options{Host: host{r.st}, Environ: map[string]string{}})
			if err != nil {
				b.Fatal(err)
			}
			r.st.syncStores(set)
			r.rules.Store(set)
			for _, store := range []string{"media", "hands", "passwords"} {
				for i := range 100 {
					r.st.storeSet(store, fmt.Sprint("k", i), map[string]any{"mic": true, "cam": false, "name": fmt.Sprint("user-", i)})
				}
			}
			c := &conn{id: "k7", data: map[string]any{}}
			r.st.add(c)
			var got any
			reply := func(v any) { got = v }
			b.ReportAllocs()
			for b.Loop() {
				got = nil
				r.runRules(set, c, "probe", nil, nil, reply)
				if got != true {
					b.Fatalf("ack %v, want true", got)
				}
			}
		})
	}
}

// BenchmarkRuleJoinRoomStores applies the built-in join-room for a
// newcomer to a room of 8 members, each with a media state, the media
// store holding 300 entries in all: the backfill reads stores.media[peer]
// three times per member. On each registry.
func BenchmarkRuleJoinRoomStores(b *testing.B) {
	srv := redistest.Start(b)
	for _, impl := range []string{"memory", "redis"} {
		b.Run(impl, func(b *testing.B) {
			r, w := benchRouter(b)
			if impl == "redis" {
				c := newTestRedisClient(b, srv)
				if err := c.FlushDB(context.Background()).Err(); err != nil {
					b.Fatal(err)
				}
				reg := newTestRedisRegistry(b, c, "A")
				r.st.registry = reg
				reg.syncStores(r.Rules())
			}
			set := r.Rules()
			for i := range 300 {
				r.st.storeSet("media", fmt.Sprint("other-", i), map[string]any{"mic": true, "cam": false})
			}
			for i := range 8 {
				c := r.benchConn(fmt.Sprint("m", i))
				r.runRules(set, c, "join-room", map[string]any{"roomId": "room-42", "name": c.id}, nil, nil)
				r.runRules(set, c, "media-state", map[string]any{"roomId": "room-42", "mic": true, "cam": false}, nil, nil)
			}
			newcomer := r.benchConn("newcomer")
			data := map[string]any{"roomId": "room-42", "name": "alice"}
			args := []any{data}
			w.sent = 0
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				r.runRules(set, newcomer, "join-room", data, args, nil)
				r.st.leave(newcomer, "room-42")
				n++
			}
			if w.sent != n*(8*2+2) {
				b.Fatalf("sent %d emits, want %d", w.sent, n*(8*2+2))
			}
		})
	}
}
