package main

import (
	"context"
	"crypto/sha256"
	"os"
	"time"
)

// watchFile asks for a reload when the file at path changes on disk. It
// polls rather than using inotify so that editors that save by renaming a
// new file over the old one, and files on network or container mounts, are
// seen alike. A change is reported once the file has stopped changing for
// settle (an editor may write it in several steps), and only if its
// content differs from what was last reported.
func watchFile(ctx context.Context, path string, every, settle time.Duration, reload chan<- struct{}) {
	stamp := func() (time.Time, int64, bool) {
		fi, err := os.Stat(path)
		if err != nil {
			return time.Time{}, 0, false
		}
		return fi.ModTime(), fi.Size(), true
	}
	digest := func() [32]byte {
		b, _ := os.ReadFile(path)
		return sha256.Sum256(b)
	}
	lastMod, lastSize, _ := stamp()
	lastSum := digest()
	var changedAt time.Time
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			mod, size, ok := stamp()
			if !ok {
				continue // mid-rename or deleted: wait for it to come back
			}
			if !mod.Equal(lastMod) || size != lastSize {
				lastMod, lastSize, changedAt = mod, size, now
				continue
			}
			if changedAt.IsZero() || now.Sub(changedAt) < settle {
				continue
			}
			changedAt = time.Time{}
			if sum := digest(); sum != lastSum {
				lastSum = sum
				select {
				case reload <- struct{}{}:
				default: // a reload is already pending: coalesce
				}
			}
		}
	}
}
