package main

// Reading the server's own profiles over /debug/pprof, in their text form
// (debug=1): the heap profile carries runtime.MemStats at its end, and
// parsing text keeps the tool free of a profile-format dependency.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// heapSample is one stack of the heap profile with its live objects and
// bytes, scaled up from the sampled ones.
type heapSample struct {
	objects, bytes float64
	frames         []string // function names, allocation site first
}

// heapProfile is a parsed heap profile and the MemStats that came with it.
type heapProfile struct {
	samples []heapSample
	stats   map[string]uint64 // "HeapInuse" -> value
}

// fetch GETs url and returns its body.
func fetch(url string) ([]byte, error) {
	c := http.Client{Timeout: 2 * time.Minute}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b, nil
}

// readHeap fetches the heap profile after a collection (gc=1), so that it
// and its MemStats describe live memory only.
func readHeap(pprofBase string) (*heapProfile, error) {
	b, err := fetch(pprofBase + "/heap?debug=1&gc=1")
	if err != nil {
		return nil, err
	}
	return parseHeap(b)
}

// parseHeap parses the debug=1 heap profile. Its counts are the sampled
// ones, not scaled (only the proto form is): scaling is done here the way
// the runtime does it for the proto form (scaleHeapSample), from the rate
// in the header ("heap/<2*rate>").
func parseHeap(b []byte) (*heapProfile, error) {
	p := &heapProfile{stats: map[string]uint64{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	if !sc.Scan() {
		return nil, fmt.Errorf("heap profile: empty")
	}
	head := sc.Text()
	i := strings.LastIndex(head, "heap/")
	if i < 0 {
		return nil, fmt.Errorf("heap profile: no rate in %q", head)
	}
	r2, err := strconv.ParseFloat(strings.TrimSpace(head[i+len("heap/"):]), 64)
	if err != nil || r2 <= 0 {
		return nil, fmt.Errorf("heap profile: bad rate in %q", head)
	}
	rate := r2 / 2
	var cur *heapSample
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "# runtime.MemStats"):
			cur = nil
		case strings.HasPrefix(line, "#\t0x"):
			if cur != nil {
				cur.frames = appendFrame(cur.frames, line)
			}
		case strings.HasPrefix(line, "# "):
			// "# HeapInuse = 123"
			// "# Stack = inuse / sys" (also MSpan, MCache): kept as
			// StackInuse and StackSys, the MemStats names.
			if k, v, ok := strings.Cut(line[2:], " = "); ok {
				inuse, sys, two := strings.Cut(v, " / ")
				if n, err := strconv.ParseUint(strings.TrimSpace(inuse), 10, 64); err == nil {
					if two {
						p.stats[k+"Inuse"] = n
						if n, err := strconv.ParseUint(strings.TrimSpace(sys), 10, 64); err == nil {
							p.stats[k+"Sys"] = n
						}
					} else {
						p.stats[k] = n
					}
				}
			}
		case strings.Contains(line, " @ "):
			// "inuseObjs: inuseBytes [allocObjs: allocBytes] @ addrs"
			var objs, byts, ao, ab float64
			if _, err := fmt.Sscanf(line, "%g: %g [%g: %g]", &objs, &byts, &ao, &ab); err != nil {
				return nil, fmt.Errorf("heap profile: %q: %w", line, err)
			}
			if objs > 0 {
				avg := byts / objs
				scale := 1 / (1 - math.Exp(-avg/rate))
				objs, byts = objs*scale, byts*scale
			}
			p.samples = append(p.samples, heapSample{objects: objs, bytes: byts})
			cur = &p.samples[len(p.samples)-1]
		}
	}
	return p, sc.Err()
}

// goroutineGroup is a set of goroutines parked at the same stack.
type goroutineGroup struct {
	count  int
	frames []string // innermost first
}

// readGoroutines fetches the goroutine profile: the total and the groups.
func readGoroutines(pprofBase string) (int, []goroutineGroup, error) {
	b, err := fetch(pprofBase + "/goroutine?debug=1")
	if err != nil {
		return 0, nil, err
	}
	return parseGoroutines(b)
}

func parseGoroutines(b []byte) (int, []goroutineGroup, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	total := -1
	var groups []goroutineGroup
	var cur *goroutineGroup
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "goroutine profile: total "):
			n, err := strconv.Atoi(strings.TrimPrefix(line, "goroutine profile: total "))
			if err != nil {
				return 0, nil, fmt.Errorf("goroutine profile: %q", line)
			}
			total = n
		case strings.HasPrefix(line, "#\t0x"):
			if cur != nil {
				cur.frames = appendFrame(cur.frames, line)
			}
		case strings.Contains(line, " @ "):
			var n int
			if _, err := fmt.Sscanf(line, "%d @", &n); err != nil {
				return 0, nil, fmt.Errorf("goroutine profile: %q: %w", line, err)
			}
			groups = append(groups, goroutineGroup{count: n})
			cur = &groups[len(groups)-1]
		}
	}
	if total < 0 {
		return 0, nil, fmt.Errorf("goroutine profile: no total")
	}
	return total, groups, sc.Err()
}

// appendFrame appends the function named by a frame line of a debug=1
// profile, "#\t0xaddr\tfunc+0x12\tfile:line", to frames.
func appendFrame(frames []string, line string) []string {
	f := strings.Split(line, "\t")
	if len(f) < 3 {
		return frames
	}
	fn := f[2]
	if j := strings.LastIndex(fn, "+0x"); j > 0 {
		fn = fn[:j]
	}
	return append(frames, fn)
}
