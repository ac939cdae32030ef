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
