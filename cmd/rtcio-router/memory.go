package main

// Giving memory back after many clients left (issue 14).
//
// Why the binary does this and not the runtime alone: after a mass
// disconnect (a node drained, a network blip, a test run ending) nearly all
// of the heap is garbage, but a server that then sits idle allocates
// nothing, so no collection runs until the runtime's forced one two minutes
// later, and the background scavenger returns freed pages only slowly after
// that. Measured (bench/memidle, 10,000 idle sockets closed at once): RSS
// stayed at 381 MiB, 16x the 24 MiB before they connected, for the whole
// minute after. A collection followed by returning every free page
// (debug.FreeOSMemory) brings it back within one check. It is done only
// after a large drop in sockets, so a server under steady churn never pays
// for it; what it costs is one collection of what is still live, and page
// faults for the next allocations.

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"time"
)

// reclaimEvery is how often the socket count is checked: often enough that
// memory is back well within a minute of a drop, rarely enough to cost
// nothing (one count under a read lock).
const reclaimEvery = 5 * time.Second

// reclaimMinDrop is the smallest drop worth a collection: with about 30 KiB
// per idle socket, 256 sockets are some 8 MiB.
const reclaimMinDrop = 256

// reclaimer decides when to give memory back: when the socket count has
// fallen by at least reclaimMinDrop and by at least a quarter from its peak
// since the last time.
type reclaimer struct {
	peak int
}

// observe takes one reading, the socket count now and its peak since the
// previous reading, and reports whether to give memory back now.
func (r *reclaimer) observe(n, peak int) bool {
	r.peak = max(r.peak, peak, n)
	if r.peak-n < reclaimMinDrop || n > r.peak*3/4 {
		return false
	}
	r.peak = n
	return true
}

// reclaimAfterDrops runs until ctx ends, giving memory back after each
// large drop in the socket count (count: Router.SocketsPeak).
func reclaimAfterDrops(ctx context.Context, count func() (now, peak int), log *slog.Logger) {
	var r reclaimer
	t := time.NewTicker(reclaimEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, p := count()
		peak := max(r.peak, p)
		if !r.observe(n, p) {
			continue
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		debug.FreeOSMemory()
		runtime.ReadMemStats(&after)
		log.Debug("gave memory back after sockets closed", "sockets", n, "peak", peak,
			"heap_live_mib", after.HeapAlloc>>20, "released_mib", (after.HeapReleased-min(before.HeapReleased, after.HeapReleased))>>20,
			"took", time.Since(start))
	}
}
