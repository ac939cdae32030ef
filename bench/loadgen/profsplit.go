package main

// loadgen profsplit: the layer split of a CPU profile that bench/README.md
// tabulates. pprof's own views rank functions; the question here is which
// layer the server's time goes to (the kernel's system calls, the Go
// scheduler, the collector, allocation, the socket.io library, the router),
// and a layer is a property of the whole stack, not of one function: a
// write(2) is kernel time whoever calls it, and a map lookup inside the
// library is the library's. So every sample's stack is read from the leaf
// up and put in the first layer that claims it.
//
//	go tool pprof -traces BINARY PROFILE | loadgen profsplit

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// layers in the order the table lists them; classify returns one of these.
var layers = []string{
	"kernel: write(2)",
	"kernel: read(2)",
	"kernel: epoll_wait (netpoll)",
	"kernel: futex, other system calls",
	"scheduler (park, ready, find work, syscall entry/exit)",
	"GC (marking, sweeping, assists)",
	"allocation (mallocgc)",
	"socket.io library (zishang520)",
	"gorilla/websocket (frame reads)",
	"router: sio layer (router/internal/sio)",
	"router: rules, relay, state (router/...)",
	"JSON (goccy/go-json)",
	"metrics (prometheus client)",
	"other",
}

// has reports whether any frame of the stack (leaf first) contains s.
func has(stack []string, subs ...string) bool {
	for _, f := range stack {
		for _, s := range subs {
			if strings.Contains(f, s) {
				return true
			}
		}
	}
	return false
}

// classify names the layer a sample belongs to.
func classify(stack []string) string {
	if len(stack) == 0 {
		return "other"
	}
	leaf := stack[0]
	kernel := strings.Contains(leaf, "Syscall") || strings.HasPrefix(leaf, "runtime.futex") ||
		strings.HasPrefix(leaf, "runtime.usleep") || strings.HasPrefix(leaf, "runtime.nanosleep") ||
		strings.HasPrefix(leaf, "runtime.osyield") || strings.HasPrefix(leaf, "runtime.madvise") ||
		strings.HasPrefix(leaf, "runtime.tgkill") || strings.HasPrefix(leaf, "runtime.write1") ||
		strings.HasPrefix(leaf, "runtime.mmap") || strings.HasPrefix(leaf, "runtime.munmap")
	if kernel {
		switch {
		case has(stack, "runtime.futex"):
			return layers[3]
		case has(stack, "syscall.write", "syscall.Write"):
			return layers[0]
		case has(stack, "syscall.read", "syscall.Read"):
			return layers[1]
		case has(stack, "runtime.netpoll"):
			return layers[2]
		}
		return layers[3]
	}
	switch {
	case has(stack, "runtime.gcBgMarkWorker", "runtime.gcDrain", "runtime.bgsweep", "runtime.bgscavenge",
		"runtime.gcAssist", "runtime.gcStart", "runtime.gcMarkDone", "runtime.gcMarkTermination", "runtime.sweepone",
		"runtime.(*mheap).reclaim", "runtime.markroot", "runtime.scanobject", "runtime.deductSweepCredit"):
		return layers[5]
	case has(stack, "runtime.mallocgc"):
		return layers[6]
	case strings.HasPrefix(leaf, "runtime.") && has(stack, "runtime.schedule", "runtime.findRunnable", "runtime.park_m",
		"runtime.goready", "runtime.ready", "runtime.gopark", "runtime.goexit0", "runtime.newproc", "runtime.wakep",
		"runtime.startm", "runtime.stopm", "runtime.sysmon", "runtime.entersyscall", "runtime.exitsyscall",
		"runtime.reentersyscall", "runtime.mcall", "runtime.mstart", "runtime.netpollblock", "runtime.checkTimers",
		"runtime.runOneTimer", "runtime.(*timers)"):
		return layers[4]
	}
	// Everything else is charged to the innermost frame of a known layer:
	// a map lookup or a memmove belongs to whoever called it.
	for _, f := range stack {
		switch {
		case strings.Contains(f, "github.com/zishang520/"):
			return layers[7]
		case strings.Contains(f, "github.com/gorilla/websocket"):
			return layers[8]
		case strings.Contains(f, "rtcio-router/router/internal/sio"):
			return layers[9]
		case strings.Contains(f, "rtcio-router/"):
			return layers[10]
		case strings.Contains(f, "github.com/goccy/go-json"):
			return layers[11]
		case strings.Contains(f, "github.com/prometheus/"):
			return layers[12]
		}
	}
	if has(stack, "runtime.schedule", "runtime.sysmon", "runtime.mstart") {
		return layers[4]
	}
	return "other"
}

// profSplit reads `go tool pprof -traces` output and prints the layers'
// shares as a Markdown table; with msgs > 0 also the CPU per message.
func profSplit(args []string, in io.Reader, out io.Writer) error {
	msgs := int64(0)
	if len(args) > 0 {
		n, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil {
			return fmt.Errorf("profsplit: messages: %w", err)
		}
		msgs = n
	}
	sum := map[string]time.Duration{}
	var total time.Duration
	var cur time.Duration
	var stack []string
	flush := func() {
		if cur > 0 {
			sum[classify(stack)] += cur
			total += cur
		}
		cur, stack = 0, stack[:0]
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-----") {
			flush()
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 || cur == 0 && !strings.HasPrefix(line, " ") {
			continue // the header
		}
		if cur == 0 && len(stack) == 0 {
			d, err := time.ParseDuration(f[0])
			if err != nil || len(f) < 2 {
				continue
			}
			cur, stack = d, append(stack, f[1])
			continue
		}
		stack = append(stack, f[0])
	}
	flush()
	if err := sc.Err(); err != nil {
		return err
	}
	if total == 0 {
		return fmt.Errorf("profsplit: no samples (input: go tool pprof -traces BINARY PROFILE)")
	}
	fmt.Fprintln(out, "| layer | share | CPU |")
	fmt.Fprintln(out, "|---|--:|--:|")
	names := append(slices.Clone(layers), "other")
	seen := map[string]bool{}
	for _, l := range names {
		if seen[l] || sum[l] == 0 {
			continue
		}
		seen[l] = true
		cpu := sum[l].String()
		if msgs > 0 {
			cpu = fmt.Sprintf("%.1f µs/msg", float64(sum[l].Microseconds())/float64(msgs))
		}
		fmt.Fprintf(out, "| %s | %.1f %% | %s |\n", l, 100*float64(sum[l])/float64(total), cpu)
	}
	if msgs > 0 {
		fmt.Fprintf(out, "| all | 100 %% | %.1f µs/msg |\n", float64(total.Microseconds())/float64(msgs))
	}
	return nil
}

func runProfSplit(args []string) {
	if err := profSplit(args, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen profsplit:", err)
		os.Exit(1)
	}
}
