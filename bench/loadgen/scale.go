package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/rtcio/rtcio-router/bench/load"
)

// The scale suite (-scale N): N idle sockets on one server, the generator's
// side spread over the loopback source addresses 127.0.0.2 and up, then
// relay pairs among them at the fixed rate. One source address gives about
// 28k ephemeral ports (Linux's default range), so 50k sockets need two or
// more; every socket is also an open file in both processes, so N is capped
// by the open-file limit, which only a process with CAP_SYS_RESOURCE can
// raise past its hard value.

// scaleFiles is what the scale suite needs besides its sockets: the relay
// pairs' sockets and the processes' own files, with room to spare.
func scaleFiles(c config) int { return 2*c.scalePairs + 500 }

// scaleSockets is the socket count the open-file limit allows for the
// scale suite, and why it is lower than asked, if it is.
func scaleSockets(c config) (int, string) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return c.scale, ""
	}
	// Take the hard limit if run.sh did not: the servers inherit it.
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	room := int(lim.Cur) - scaleFiles(c)
	if c.scale <= room {
		return c.scale, ""
	}
	n := room / 1000 * 1000
	raised := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: uint64(c.scale + scaleFiles(c)), Max: uint64(c.scale + scaleFiles(c))})
	return n, fmt.Sprintf("%s sockets need %d open files in the server and in the generator, the limit is %d (hard %d) and raising it was refused (%v: needs root with CAP_SYS_RESOURCE, e.g. prlimit --nofile)",
		commas(int64(c.scale)), c.scale+scaleFiles(c), lim.Cur, lim.Max, raised)
}

// runScale runs the rounds of the scale suite, rotating which server goes
// first.
func runScale(ctx context.Context, c config, res *results, seq *int) error {
	n, why := scaleSockets(c)
	if why != "" {
		fmt.Fprintf(os.Stderr, "loadgen: -scale: %s; running %s sockets instead\n", why, commas(int64(n)))
		res.Notes = append(res.Notes, fmt.Sprintf("Asked for %s sockets: %s. Ran %s.", commas(int64(c.scale)), why, commas(int64(n))))
	}
	if n < 1000 {
		return fmt.Errorf("-scale: the open-file limit leaves room for %d sockets", n)
	}
	sources := c.scaleSources
	if sources < 1 {
		sources = (n + 9999) / 10000
	}
	var from []string
	for k := range sources {
		from = append(from, fmt.Sprintf("127.0.0.%d", 2+k))
	}
	fmt.Fprintf(os.Stderr, "loadgen: scale suite: %d sockets from %s, %d relay pairs at %v msgs/s\n", n, strings.Join(from, ", "), c.scalePairs, c.relayRate)
	for round := 1; round <= c.rounds; round++ {
		for _, kind := range rotate(round, append([]string{"router", "node", "uws"}, c.variants...)...) {
			if !c.servers[kind] {
				continue
			}
			s := suite{c: c, res: res, kind: kind, round: round, seq: seq}
			s.with(ctx, "scale", func(p *proc) ([]load.Figure, error) {
				t := p.target()
				t.Sources = from
				return load.Scale(ctx, t, n, c.scalePairs, c.relayRate, c.settle, c.timing)
			})
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	if len(res.Errors) > 0 {
		return fmt.Errorf("%d scenario(s) failed:\n  %s", len(res.Errors), strings.Join(res.Errors, "\n  "))
	}
	return nil
}

// reportScale prints the scale suite's table.
func reportScale(w io.Writer, c config, r *results) {
	fmt.Fprintf(w, "\n### Scale (medians of %d round(s); min–max in small type)\n\n", c.rounds)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "%s\n\n", n)
	}
	sideBySide(w, c, r, r.Keys)
	failed(w, r)
}
