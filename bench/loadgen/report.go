package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/rtcio/rtcio-router/bench/load"
)

func median(v []float64) (float64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

func (r *results) median(server, key string) (float64, bool) { return median(r.Values[server][key]) }

// num prints a figure with the precision its size deserves.
func num(v float64) string {
	switch {
	case v >= 1000:
		return commas(int64(v + 0.5))
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// cell is the median with the spread over rounds when there are several.
func (r *results) cell(server, key string) string {
	v := r.Values[server][key]
	m, ok := median(v)
	if !ok {
		return "—"
	}
	if len(v) < 2 {
		return num(m)
	}
	return fmt.Sprintf("%s <sub>%s–%s</sub>", num(m), num(slices.Min(v)), num(slices.Max(v)))
}

// target is issue 6's goal for a figure, as a ratio router/Node (the
// default transport), if it has one.
func target(key string) (goal float64, atLeast bool, ok bool) {
	switch {
	case strings.HasPrefix(key, "relay max") && strings.HasSuffix(key, ": throughput"):
		return 3, true, true
	case strings.HasPrefix(key, "relay RTT") && strings.HasSuffix(key, ": p99"):
		return 0.5, false, true
	case strings.HasPrefix(key, "join storm") && strings.HasSuffix(key, ": completion"):
		return 0.5, false, true
	case strings.HasPrefix(key, "idle") && strings.HasSuffix(key, ": RSS per socket"):
		return 0.33, false, true
	}
	return 0, false, false
}

// targetUWS is issue 14's goal for a figure, as a ratio router/(Node on
// uWebSockets.js), if it has one: half its CPU per relayed message, at the
// fixed rate and at saturation, and a round-trip p99 no worse.
func targetUWS(key string) (goal float64, ok bool) {
	relay := strings.HasPrefix(key, "relay RTT") || strings.HasPrefix(key, "relay max")
	switch {
	case relay && strings.HasSuffix(key, ": server CPU per msg"):
		return 0.5, true
	case strings.HasPrefix(key, "relay RTT") && strings.HasSuffix(key, ": p99"):
		return 1, true
	}
	return 0, false
}

// goalMark says whether ratio meets a goal, e.g. "≤ 0.5× Node: **met**".
func goalMark(ratio, goal float64, atLeast bool, of string) string {
	met, sign := ratio <= goal, "≤"
	if atLeast {
		met, sign = ratio >= goal, "≥"
	}
	mark := "not met"
	if met {
		mark = "**met**"
	}
	return fmt.Sprintf("%s %.2g× %s: %s", sign, goal, of, mark)
}

// column is a server of the side-by-side tables.
type column struct{ kind, title string }

var columns = []column{
	{"echo", "echo (ceiling)"},
	{"router", "rtcio-router"},
	{"node", "Node socket.io 4"},
	{"uws", "Node + uWS"},
}

// bestNode is the better of the two Node servers' medians for a figure:
// the router is held to the best a Node deployment does, not only the
// default.
func (r *results) bestNode(key string) (float64, bool) {
	var best float64
	found := false
	for _, k := range []string{"node", "uws"} {
		v, ok := r.median(k, key)
		if !ok {
			continue
		}
		if !found || (r.Lower[key] && v < best) || (!r.Lower[key] && v > best) {
			best = v
		}
		found = true
	}
	return best, found
}

// ratio is a/b written as "0.52×", "" when either is missing.
func ratio(a float64, aok bool, b float64, bok bool) string {
	if !aok || !bok || b == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// sideBySide prints one row per figure: every server that ran, the router
// against Node and against the better Node, and the issues' targets.
func sideBySide(w io.Writer, c config, r *results, keys []string) {
	var cols []column
	for _, col := range columns {
		if len(r.Values[col.kind]) > 0 {
			cols = append(cols, col)
		}
	}
	for _, v := range c.variants {
		if len(r.Values[v]) > 0 {
			cols = append(cols, column{v, strings.TrimPrefix(v, "router+")})
		}
	}
	fmt.Fprint(w, "| figure | unit |")
	for _, col := range cols {
		fmt.Fprintf(w, " %s |", col.title)
	}
	fmt.Fprintln(w, " router/Node | router/best Node | issue targets |")
	fmt.Fprint(w, "|---|---|"+strings.Repeat("--:|", len(cols))+"--:|--:|---|\n")
	rp := reloadPrefix(c)
	for _, k := range keys {
		rv, rok := r.median("router", k)
		nv, nok := r.median("node", k)
		uv, uok := r.median("uws", k)
		bv, bok := r.bestNode(k)
		vsNode, vsBest := ratio(rv, rok, nv, nok), ratio(rv, rok, bv, bok)
		var goals []string
		if g, atLeast, ok := target(k); ok && rok && nok && nv != 0 {
			goals = append(goals, goalMark(rv/nv, g, atLeast, "Node"))
		}
		if g, ok := targetUWS(k); ok && rok && uok && uv != 0 {
			goals = append(goals, goalMark(rv/uv, g, false, fmt.Sprintf("uWS (%.2f×)", rv/uv)))
		}
		if base, ok := r.median("router", strings.TrimPrefix(k, rp)); rok && ok && strings.HasPrefix(k, rp) && base != 0 {
			vsNode = fmt.Sprintf("%.2f× of no reload", rv/base)
		}
		fmt.Fprintf(w, "| %s | %s |", k, r.Units[k])
		for _, col := range cols {
			fmt.Fprintf(w, " %s |", r.cell(col.kind, k))
		}
		fmt.Fprintf(w, " %s | %s | %s |\n", vsNode, vsBest, strings.Join(goals, "; "))
	}
}

// report prints the side-by-side table and the scaling table as Markdown.
func report(w io.Writer, c config, r *results) {
	fmt.Fprintf(w, "\n### Side by side (medians of %d round(s); min–max in small type)\n\n", c.rounds)
	sideBySide(w, c, r, r.Keys)
	if !c.runs["idle"] && !c.runs["storm"] {
		failed(w, r)
		return
	}
	fmt.Fprintf(w, "\n### Scaling (medians; rooms of 4 in the join storm)\n\n")
	fmt.Fprintln(w, "| sockets | idle RSS/socket router | Node | Node + uWS | router/best | connect all router | Node | Node + uWS | router/best | join storm router | Node | Node + uWS | router/best | join CPU/socket router | Node | Node + uWS | router/best |")
	fmt.Fprintln(w, "|--:|"+strings.Repeat("--:|", 16))
	for _, n := range c.sizes {
		idle := fmt.Sprintf("idle %s sockets: ", load.Count(n))
		storm := fmt.Sprintf("join storm %d×4 (%s sockets): ", n/4, load.Count(n))
		fmt.Fprintf(w, "| %s |", load.Count(n))
		for _, k := range []string{idle + "RSS per socket", idle + "connect all", storm + "completion", storm + "server CPU per socket"} {
			for _, kind := range []string{"router", "node", "uws"} {
				cell := "—"
				if v, ok := r.median(kind, k); ok {
					cell = num(v) + " " + r.Units[k]
				}
				fmt.Fprintf(w, " %s |", cell)
			}
			rv, rok := r.median("router", k)
			bv, bok := r.bestNode(k)
			fmt.Fprintf(w, " %s |", ratio(rv, rok, bv, bok))
		}
		fmt.Fprintln(w)
	}
	failed(w, r)
}

// failed lists the scenarios that failed, if any.
func failed(w io.Writer, r *results) {
	if len(r.Errors) > 0 {
		fmt.Fprintf(w, "\nFailed scenarios (missing from the medians):\n")
		for _, e := range r.Errors {
			fmt.Fprintf(w, "- %s\n", e)
		}
	}
}
