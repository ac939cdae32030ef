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

// target is the goal for a figure, as a ratio router/Node, if it
// has one.
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

// report prints the side-by-side table and the scaling table as Markdown.
func report(w io.Writer, c config, r *results) {
	fmt.Fprintf(w, "\n### Side by side (medians of %d round(s); min–max in small type)\n\n", c.rounds)
	fmt.Fprintln(w, "| figure | unit | echo (ceiling) | rtcio-router | Node socket.io 4 | router/Node | issue target |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|---|")
	rp := reloadPrefix(c)
	for _, k := range r.Keys {
		ratio, goal := "", ""
		rv, rok := r.median("router", k)
		if nv, nok := r.median("node", k); rok && nok && nv != 0 {
			ratio = fmt.Sprintf("%.2f×", rv/nv)
			if g, atLeast, ok := target(k); ok {
				met := rv/nv <= g
				sign := "≤"
				if atLeast {
					met, sign = rv/nv >= g, "≥"
				}
				mark := "not met"
				if met {
					mark = "**met**"
				}
				goal = fmt.Sprintf("%s %.2g×: %s", sign, g, mark)
			}
		} else if base, ok := r.median("router", strings.TrimPrefix(k, rp)); rok && ok && strings.HasPrefix(k, rp) && base != 0 {
			ratio = fmt.Sprintf("%.2f× of no reload", rv/base)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", k, r.Units[k],
			r.cell("echo", k), r.cell("router", k), r.cell("node", k), ratio, goal)
	}
	fmt.Fprintf(w, "\n### Scaling (medians; rooms of 4 in the join storm)\n\n")
	fmt.Fprintln(w, "| sockets | idle RSS/socket router | Node | ratio | connect all router | Node | ratio | join storm router | Node | ratio | join CPU/socket router | Node | ratio |")
	fmt.Fprintln(w, "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, n := range c.sizes {
		idle := fmt.Sprintf("idle %s sockets: ", load.Count(n))
		storm := fmt.Sprintf("join storm %d×4 (%s sockets): ", n/4, load.Count(n))
		fmt.Fprintf(w, "| %s |", load.Count(n))
		for _, k := range []string{idle + "RSS per socket", idle + "connect all", storm + "completion", storm + "server CPU per socket"} {
			rv, rok := r.median("router", k)
			nv, nok := r.median("node", k)
			cells := []string{"—", "—", ""}
			if rok {
				cells[0] = num(rv) + " " + r.Units[k]
			}
			if nok {
				cells[1] = num(nv) + " " + r.Units[k]
			}
			if rok && nok && nv != 0 {
				cells[2] = fmt.Sprintf("%.2f×", rv/nv)
			}
			fmt.Fprintf(w, " %s |", strings.Join(cells, " | "))
		}
		fmt.Fprintln(w)
	}
	if len(r.Errors) > 0 {
		fmt.Fprintf(w, "\nFailed scenarios (missing from the medians):\n")
		for _, e := range r.Errors {
			fmt.Fprintf(w, "- %s\n", e)
		}
	}
}
