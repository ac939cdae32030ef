package load

import (
	"context"

	"github.com/rtcio/rtcio-router/bench/sio"
)

// DialIdle opens n connections to url that then only answer pings, the
// way the idle scenario opens them, for tools that measure a server between
// connecting and closing (bench/memidle). CloseAll closes them.
func DialIdle(ctx context.Context, url string, n int) ([]*sio.Conn, error) {
	return dialEach(ctx, Target{URL: url}, func(i int) int { return i }, n, func(_ int, c *sio.Conn) {
		go func() { _ = c.Serve(func([]byte) {}) }()
	})
}

// CloseAll closes every connection DialIdle opened.
func CloseAll(conns []*sio.Conn) { closeAll(conns) }
