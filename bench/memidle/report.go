package main

// Attribution and the printed tables.

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// owner names who holds an allocation, from its stack. Rules are tried in
// order against each frame, allocation site first, so the innermost frame
// of a known owner decides; frames of general-purpose code (runtime,
// containers, encoding, the library's generic helpers) are passed over,
// since who called them is what matters.
type ownerRule struct {
	prefix string // function name prefix
	owner  string
}

// ownerRules map a frame to an owner. "" marks generic code: keep looking
// further out.
var ownerRules = []ownerRule{
	{"github.com/rtcio/rtcio-router/router/internal/sio.", "rtcio sio layer (transport, guard, Socket)"},
	{"github.com/rtcio/rtcio-router/router.", "router state (conn, registry)"},
	{"github.com/zishang520/socket.io/servers/engine/v3/transports.", "library: engine.io transport base"},
	{"github.com/zishang520/socket.io/servers/engine/v3.", "library: engine.io socket"},
	{"github.com/zishang520/socket.io/servers/socket/v3.", "library: socket.io client and socket"},
	{"github.com/zishang520/socket.io/parsers/", "library: parsers"},
	{"github.com/zishang520/socket.io/v3/pkg/types.NewHttpContext", "library: handshake HttpContext"},
	{"github.com/zishang520/socket.io/v3/pkg/types.(*HttpContext)", "library: handshake HttpContext"},
	{"github.com/zishang520/socket.io/v3/pkg/types.(*WebSocketConn)", "library: engine.io socket"},
	{"github.com/zishang520/socket.io/v3/pkg/utils.SetTimeout", "library: heartbeat timer"},
	{"github.com/gorilla/websocket.", "gorilla websocket.Conn"},
	{"net/http.(*conn).readRequest", "net/http request (handshake)"},
	{"net/http.readRequest", "net/http request (handshake)"},
	{"net/http.(*conn).hijackLocked", "net/http hijack (bufio)"},
	{"net/http.", "net/http connection"},
	{"net.", "net.Conn (fd)"},
	{"internal/poll.", "net.Conn (fd)"},
	{"runtime.malg", "goroutine descriptors (g)"},
	{"runtime.", ""},
	{"internal/", ""},
	{"sync.", ""},
	{"maps.", ""},
	{"reflect.", ""},
	{"bufio.", ""},
	{"bytes.", ""},
	{"strings.", ""},
	{"strconv.", ""},
	{"fmt.", ""},
	{"time.", ""},
	{"context.", ""},
	{"net/url.", ""},
	{"net/textproto.", ""},
	{"encoding/", ""},
	{"github.com/zishang520/socket.io/v3/pkg/", ""},
	{"github.com/goccy/", ""},
}

func ownerOf(frames []string) string {
	for _, f := range frames {
		for _, r := range ownerRules {
			if strings.HasPrefix(f, r.prefix) {
				if r.owner != "" {
					return r.owner
				}
				goto next
			}
		}
		return "other: " + f
	next:
	}
	return "other"
}

// byOwner sums the heap samples of p by owner.
func byOwner(p *heapProfile) map[string]float64 {
	out := map[string]float64{}
	for _, s := range p.samples {
		out[ownerOf(s.frames)] += s.bytes
	}
	return out
}

// byStack sums the heap samples of p by their whole stack.
func byStack(p *heapProfile) map[string]float64 {
	out := map[string]float64{}
	for _, s := range p.samples {
		out[strings.Join(s.frames, "\n")] += s.bytes
	}
	return out
}

func kib(b float64) string { return fmt.Sprintf("%.2f", b/1024) }

func (m *measurement) perConn(b float64) string { return kib(b / float64(m.n)) }

func (m *measurement) statDelta(k string) float64 {
	return float64(m.after.heap.stats[k]) - float64(m.before.heap.stats[k])
}

func (m *measurement) report(w io.Writer, c config) {
	n := float64(m.n)
	fmt.Fprintf(w, "## %d idle WebSocket sockets (connected in %v, RSS read %v later)\n\n", m.n, m.connectTook.Round(1e6), c.settle)
	fmt.Fprintf(w, "| | KiB per socket |\n|---|---:|\n")
	fmt.Fprintf(w, "| **RSS** (VmRSS after − before, as the bench's idle scenario) | **%s** |\n", m.perConn(float64(m.after.rss-m.before.rss)))
	fmt.Fprintf(w, "| RSS after a forced GC | %s |\n", m.perConn(float64(m.after.rssGC-m.before.rssGC)))
	rows := []struct{ name, key string }{
		{"heap: live objects (HeapAlloc)", "HeapAlloc"},
		{"heap: spans in use (HeapInuse)", "HeapInuse"},
		{"goroutine stacks (StackInuse)", "StackInuse"},
		{"span metadata (MSpanInuse)", "MSpanInuse"},
		{"GC metadata (GCSys)", "GCSys"},
		{"other runtime (OtherSys)", "OtherSys"},
		{"free heap kept, not returned (HeapIdle − HeapReleased, see below)", ""},
		{"mapped by the runtime (Sys − HeapReleased)", "-"},
	}
	for _, r := range rows {
		var d float64
		switch r.key {
		case "":
			d = m.statDelta("HeapIdle") - m.statDelta("HeapReleased")
		case "-":
			d = m.statDelta("Sys") - m.statDelta("HeapReleased")
		default:
			d = m.statDelta(r.key)
		}
		fmt.Fprintf(w, "| %s | %s |\n", r.name, m.perConn(d))
	}
	g := float64(m.after.goroutines - m.before.goroutines)
	fmt.Fprintf(w, "| goroutines per socket | %.2f (%d → %d) |\n", g/n, m.before.goroutines, m.after.goroutines)
	if g > 0 {
		fmt.Fprintf(w, "| stack per added goroutine | %s |\n", kib(m.statDelta("StackInuse")/g))
	}
	fmt.Fprintf(w, "| GC cycles so far, NextGC | %d, %.1f MiB |\n\n", m.after.heap.stats["NumGC"], float64(m.after.heap.stats["NextGC"])/(1<<20))

	// Live heap by owner.
	before, after := byOwner(m.before.heap), byOwner(m.after.heap)
	type row struct {
		owner string
		bytes float64
	}
	var owners []row
	var total float64
	for k, v := range after {
		d := v - before[k]
		owners = append(owners, row{k, d})
		total += d
	}
	for k, v := range before {
		if _, ok := after[k]; !ok {
			owners = append(owners, row{k, -v})
			total -= v
		}
	}
	slices.SortFunc(owners, func(a, b row) int { return byBytes(a.bytes, b.bytes, a.owner, b.owner) })
	fmt.Fprintf(w, "### Live heap by owner (heap profile, 1 sample per %d B, scaled)\n\n| owner | KiB per socket |\n|---|---:|\n", c.rate)
	for _, r := range owners {
		if r.bytes/n < 10 && r.bytes/n > -10 {
			continue
		}
		fmt.Fprintf(w, "| %s | %s |\n", r.owner, m.perConn(r.bytes))
	}
	fmt.Fprintf(w, "| **total** | **%s** |\n\n", m.perConn(total))

	// Goroutines by where they wait.
	fmt.Fprintf(w, "### Goroutines added, by where they wait\n\n| per socket | innermost non-runtime frame |\n|---:|---|\n")
	gb := map[string]int{}
	for _, gr := range m.before.groups {
		gb[waitSite(gr.frames)] -= gr.count
	}
	for _, gr := range m.after.groups {
		gb[waitSite(gr.frames)] += gr.count
	}
	var sites []string
	for k, v := range gb {
		if v*20 >= m.n { // at least one per 20 sockets
			sites = append(sites, k)
		}
	}
	slices.SortFunc(sites, func(a, b string) int { return gb[b] - gb[a] })
	for _, s := range sites {
		fmt.Fprintf(w, "| %.2f | %s |\n", float64(gb[s])/n, s)
	}
	fmt.Fprintln(w)

	if c.stacks > 0 {
		fmt.Fprintf(w, "### Top %d allocation stacks, per socket\n\n", c.stacks)
		topStacks(w, m.before.heap, m.after.heap, c.stacks, float64(m.n), "KiB/socket")
	}

	if len(m.closed) > 0 {
		fmt.Fprintf(w, "### RSS after every socket closed\n\nbefore opening: %.1f MiB; open: %.1f MiB\n\n| after close | RSS MiB | × before |\n|---|---:|---:|\n",
			float64(m.before.rss)/(1<<20), float64(m.after.rss)/(1<<20))
		for _, p := range m.closed {
			fmt.Fprintf(w, "| %v | %.1f | %.2f |\n", p.at, float64(p.rss)/(1<<20), float64(p.rss)/float64(m.before.rss))
		}
		fmt.Fprintln(w)
		m.reportLeft(w)
		if c.stacks > 0 {
			fmt.Fprintf(w, "Top %d stacks of the live heap left, in total:\n\n", c.stacks)
			topStacks(w, m.before.heap, m.left.heap, c.stacks, 1, "KiB")
		}
	}
}

// waitSite names a goroutine group by its innermost frame outside the
// runtime and the standard library's waiting primitives.
func waitSite(frames []string) string {
	for _, f := range frames {
		if strings.HasPrefix(f, "runtime.") || strings.HasPrefix(f, "internal/") || strings.HasPrefix(f, "sync.") ||
			strings.HasPrefix(f, "net.") || strings.HasPrefix(f, "io.") || strings.HasPrefix(f, "bufio.") || strings.HasPrefix(f, "time.") {
			continue
		}
		return f
	}
	if len(frames) > 0 {
		return frames[0]
	}
	return "?"
}

// reportLeft shows what the server still holds at the end of the close
// window compared with before the sockets opened, in MiB: live heap by
// owner (a leak shows here) and the runtime's accounts.
func (m *measurement) reportLeft(w io.Writer) {
	mib := func(b float64) string { return fmt.Sprintf("%.1f", b/(1<<20)) }
	b, l := m.before.heap.stats, m.left.heap.stats
	d := func(k string) float64 { return float64(l[k]) - float64(b[k]) }
	fmt.Fprintf(w, "At the end, against before opening (MiB): RSS %s, live heap %s, heap spans in use %s, free heap kept %s, stacks %s, span metadata %s, GC metadata %s, other runtime %s; goroutines %d → %d.\n\n",
		mib(float64(m.left.rss-m.before.rss)), mib(d("HeapAlloc")), mib(d("HeapInuse")),
		mib(d("HeapIdle")-d("HeapReleased")), mib(d("StackInuse")), mib(d("MSpanInuse")), mib(d("GCSys")), mib(d("OtherSys")),
		m.before.goroutines, m.left.goroutines)
	before, left := byOwner(m.before.heap), byOwner(m.left.heap)
	fmt.Fprintf(w, "| live heap left by owner | MiB |\n|---|---:|\n")
	var owners []string
	for k := range left {
		owners = append(owners, k)
	}
	slices.Sort(owners)
	for _, k := range owners {
		if dd := left[k] - before[k]; dd > 256<<10 || dd < -(256<<10) {
			fmt.Fprintf(w, "| %s | %s |\n", k, mib(dd))
		}
	}
	fmt.Fprintln(w)
}

// topStacks lists the n stacks whose live heap grew most from before to
// after, in KiB divided by per.
func topStacks(w io.Writer, before, after *heapProfile, n int, per float64, unit string) {
	type row struct {
		stack string
		bytes float64
	}
	sb, sa := byStack(before), byStack(after)
	var stacks []row
	for k, v := range sa {
		stacks = append(stacks, row{k, v - sb[k]})
	}
	slices.SortFunc(stacks, func(a, b row) int { return byBytes(a.bytes, b.bytes, a.stack, b.stack) })
	for i, s := range stacks {
		if i >= n {
			break
		}
		fr := strings.Split(s.stack, "\n")
		fmt.Fprintf(w, "%s %s  [%s]\n", kib(s.bytes/per), unit, ownerOf(fr))
		for j, f := range fr {
			if j >= 12 {
				break
			}
			fmt.Fprintf(w, "    %s\n", f)
		}
	}
	fmt.Fprintln(w)
}

// byBytes orders rows by bytes, largest first, then by name.
func byBytes(a, b float64, an, bn string) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return strings.Compare(an, bn)
}
