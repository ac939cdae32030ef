package router

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rtcio/rtcio-router/router/internal/sio"
)

// rulesFile writes the built-in rules plus n-4 more rules shaped like
// join-room and media-state, and returns its path.
func rulesFile(b *testing.B, n int) string {
	b.Helper()
	base, err := os.ReadFile("../rtcio.yaml")
	if err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	sb.Write(base)
	for i := 4; i < n; i++ {
		fmt.Fprintf(&sb, `
  - event: custom-%d
    validate:
      - type(data) == "map" && type(data.roomId) == "string" && len(data.roomId) in 1..128
      - check: data.n == nil || type(data.n) == "float"
        reject: { emit: custom-error, payload: { code: "bad-n", n: %d } }
    do:
      - set: media
        if: type(data.mic) == "bool"
        value:
          mic: data.mic
          cam: data.cam ?? false
      - emit: custom-%d
        to: room
        room: data.roomId
        payload:
          id: socket.id
          n: data.n ?? 0
          at: now_ms()
`, i, i, i)
	}
	path := filepath.Join(b.TempDir(), "rtcio.yaml")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkReload200Rules is one whole reload of a 200-rule file: read,
// parse, validate, compile every expression, swap.
func BenchmarkReload200Rules(b *testing.B) {
	path := rulesFile(b, 200)
	r, err := New(Options{RulesFile: path, Environ: map[string]string{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer r.tr.Close()
	if r.Rules().Len() != 200 {
		b.Fatalf("%d rules", r.Rules().Len())
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Reload(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEventDuringReload measures media-state handling while another
// goroutine reloads a 200-rule file without pause, against the same with
// no reloads: the cost a reload adds to events in flight. Reloads compile
// outside the state lock and hold it only to swap.
func BenchmarkEventDuringReload(b *testing.B) {
	for _, reloading := range []bool{false, true} {
		b.Run(fmt.Sprintf("reloading=%t", reloading), func(b *testing.B) {
			path := rulesFile(b, 200)
			r, w := benchRouter(b)
			r.opts.RulesFile = path
			r.opts.Environ = map[string]string{}
			if err := r.Reload(); err != nil {
				b.Fatal(err)
			}
			c := r.benchConn("s1")
			r.handle(c, &sio.Event{Name: "join-room", Args: []any{map[string]any{"roomId": "room-42", "name": "a"}}})
			data := map[string]any{"roomId": "room-42", "mic": true, "cam": false}
			ev := sio.Event{Name: "media-state", Args: []any{data}}
			var stop atomic.Bool
			done := make(chan int)
			go func() {
				n := 0
				for reloading && !stop.Load() {
					if err := r.Reload(); err != nil {
						panic(err)
					}
					n++
				}
				done <- n
			}()
			w.sent = 0
			for b.Loop() {
				r.handle(c, &ev)
			}
			stop.Store(true)
			reloads := <-done
			b.ReportMetric(float64(reloads), "reloads")
		})
	}
}
