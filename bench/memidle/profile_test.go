package main

import (
	"bytes"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"
)

// keep holds what the heap profile test allocates, so it is live.
var keep [][]byte

// The parsers read this process's own profiles as the server serves them:
// the scaled heap samples with their frames and the MemStats (including
// the "inuse / sys" lines), and goroutines grouped by stack.
func TestParseOwnProfiles(t *testing.T) {
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 4096
	defer func() { runtime.MemProfileRate = old }()
	keep = nil
	for range 1000 {
		keep = append(keep, make([]byte, 8192))
	}
	runtime.GC()
	var b bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&b, 1); err != nil {
		t.Fatal(err)
	}
	p, err := parseHeap(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"HeapAlloc", "HeapInuse", "StackInuse", "StackSys", "MSpanInuse", "NumGC"} {
		if p.stats[k] == 0 {
			t.Errorf("MemStats %s missing or 0", k)
		}
	}
	// The 8 MiB kept here, seen through 8 KiB samples at a 4 KiB rate.
	var mine float64
	for _, s := range p.samples {
		if slices.ContainsFunc(s.frames, func(f string) bool { return strings.HasSuffix(f, "TestParseOwnProfiles") }) {
			mine += s.bytes
		}
	}
	if mine < 6<<20 || mine > 10<<20 {
		t.Errorf("heap held by the test: %.1f MiB, want about 8", mine/(1<<20))
	}

	release := make(chan struct{})
	for range 3 {
		go parkedForTest(release)
	}
	defer close(release)
	// Until all three have reached their receive.
	var total, parked int
	for range 100 {
		b.Reset()
		if err := pprof.Lookup("goroutine").WriteTo(&b, 1); err != nil {
			t.Fatal(err)
		}
		var groups []goroutineGroup
		if total, groups, err = parseGoroutines(b.Bytes()); err != nil {
			t.Fatal(err)
		}
		parked = 0
		for _, g := range groups {
			if strings.HasSuffix(waitSite(g.frames), "parkedForTest") {
				parked += g.count
			}
		}
		if parked == 3 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if total < 4 || parked != 3 {
		t.Errorf("goroutines: total %d, %d parked in parkedForTest; want 3 of at least 4", total, parked)
	}
}

func parkedForTest(c chan struct{}) { <-c }
