package load

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rtcio/rtcio-router/bench/sio"
)

// The cluster's Redis, read by the scenarios: commands run (INFO
// commandstats) and memory (INFO memory, the keys and their MEMORY USAGE).

// probes are the commands the generator and the nodes' watchers send to
// look at Redis; they are left out of the commands a message cost.
var probes = map[string]bool{"info": true, "memory|usage": true, "scan": true, "dbsize": true, "config|resetstat": true, "ping": true}

// RedisCommands is the number of commands Redis at addr has run since it
// started (INFO commandstats), commands called inside Lua scripts included
// and the probes left out.
func RedisCommands(addr string) (int64, error) {
	stats, err := redisInfo(addr, "commandstats")
	if err != nil {
		return 0, err
	}
	var n int64
	for k, v := range stats {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok || probes[name] {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(v, "calls="), ",")
		c, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("commandstats %s: %q", k, v)
		}
		n += c
	}
	return n, nil
}

func client(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 2 * time.Second, ReadTimeout: 10 * time.Second})
}

// redisInfo reads one section of INFO as field → value.
func redisInfo(addr, section string) (map[string]string, error) {
	c := client(addr)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	text, err := c.Info(ctx, section).Result()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out, nil
}

// redisMemory is Redis's used_memory, in bytes.
func redisMemory(addr string) (int64, error) {
	m, err := redisInfo(addr, "memory")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(m["used_memory"], 10, 64)
}

// KeyKind is what one kind of key costs in Redis: the keys of that kind
// ("{rtcio}:sock:…" is kind "sock") and their MEMORY USAGE summed.
type KeyKind struct {
	Kind  string
	Keys  int
	Bytes int64
}

// redisKeys lists every key of Redis at addr by kind: the part after the
// hash tag up to the next ':'.
func redisKeys(ctx context.Context, addr string) ([]KeyKind, error) {
	c := client(addr)
	defer c.Close()
	kinds := map[string]*KeyKind{}
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, "*", 1000).Result()
		if err != nil {
			return nil, err
		}
		cmds := make([]*redis.IntCmd, len(keys))
		if _, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				cmds[i] = p.MemoryUsage(ctx, k, 0) // SAMPLES 0: every element
			}
			return nil
		}); err != nil && !errors.Is(err, redis.Nil) { // nil: a key gone since the scan
			return nil, err
		}
		for i, k := range keys {
			kind := k
			if _, rest, ok := strings.Cut(k, "}:"); ok {
				kind = rest
			}
			kind, _, _ = strings.Cut(kind, ":")
			if kinds[kind] == nil {
				kinds[kind] = &KeyKind{Kind: kind}
			}
			kinds[kind].Keys++
			kinds[kind].Bytes += cmds[i].Val()
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	var out []KeyKind
	for _, k := range kinds {
		out = append(out, *k)
	}
	slices.SortFunc(out, func(a, b KeyKind) int { return strings.Compare(a.Kind, b.Kind) })
	return out, nil
}

// RedisMemory connects n sockets spread over the cluster's nodes, in rooms
// of 4 whose members alternate nodes, and has each send its media state,
// which the built-in rules cache in the media store: the state of a busy
// cluster. It reports Redis's used_memory (INFO memory, after minus
// before) per 10k sockets, Redis keys per socket, and, for each kind of
// key, its keys per socket or room and its MEMORY USAGE per socket; kinds
// are returned for the caller to print.
func RedisMemory(ctx context.Context, t Target, n int) ([]Figure, []KeyKind, error) {
	if t.Redis == "" {
		return nil, nil, fmt.Errorf("redis memory: the target has no Redis")
	}
	if n%4 != 0 {
		return nil, nil, fmt.Errorf("redis memory: %d sockets is not rooms of 4", n)
	}
	const k = 4
	rooms := n / k
	before, err := redisMemory(t.Redis)
	if err != nil {
		return nil, nil, err
	}
	keys0, err := redisKeys(ctx, t.Redis)
	if err != nil {
		return nil, nil, err
	}
	var media atomic.Int64
	mediaDone := make(chan struct{})
	want := int64(n * (k - 1))
	conns, err := joinRooms(ctx, t, "mem", rooms, k, func(_ int, f []byte) {
		if hasPrefix(f, mediaEvent) && media.Add(1) == want {
			close(mediaDone)
		}
	})
	if err != nil {
		return nil, nil, err
	}
	defer closeAll(conns)
	// At most memWindow media states in flight: each costs the cluster a
	// read of the whole media store (see the README), and a burst of 10k
	// would queue sockets' events, their pongs included, for longer than
	// the ping timeout.
	start := time.Now()
	for i, c := range conns {
		for int64(i)-media.Load()/(k-1) >= memWindow {
			if err := sleepCtx(ctx, time.Millisecond); err != nil {
				return nil, nil, err
			}
		}
		ev := sio.Event("media-state", []byte(`{"roomId":"`+roomName("mem", i/k)+`","mic":true,"cam":false}`))
		if err := c.Write(ev); err != nil {
			return nil, nil, err
		}
	}
	select {
	case <-mediaDone:
	case <-time.After(10 * time.Minute):
		return nil, nil, fmt.Errorf("redis memory: %d of %d media-state deliveries", media.Load(), want)
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	took := time.Since(start)
	after, err := redisMemory(t.Redis)
	if err != nil {
		return nil, nil, err
	}
	keys1, err := redisKeys(ctx, t.Redis)
	if err != nil {
		return nil, nil, err
	}
	kinds := subtractKinds(keys1, keys0)
	for _, kk := range kinds {
		if kk.Kind == "sock" && kk.Keys != n {
			return nil, kinds, fmt.Errorf("redis memory: %d sockets registered in Redis, want %d (sockets were dropped)", kk.Keys, n)
		}
	}
	name := fmt.Sprintf("Redis, %s sockets in rooms of 4, media state cached", Count(n))
	total := 0
	for _, kk := range kinds {
		total += kk.Keys
	}
	figs := []Figure{
		{Key: name + ": used_memory per 10k sockets", Unit: "MiB", Value: float64(after-before) / (1 << 20) * 10000 / float64(n), Lower: true},
		{Key: name + ": keys per socket", Unit: "", Value: float64(total) / float64(n), Lower: true},
		{Key: fmt.Sprintf("%s: every socket's media-state (%d in flight), all delivered", name, memWindow), Unit: "ms", Value: float64(took.Microseconds()) / 1e3, Lower: true},
	}
	for _, kk := range kinds {
		// A kind has a key per socket, per room, or a few in all (a
		// store's hash, a node's set of sockets).
		keys := Figure{Key: fmt.Sprintf("%s: %q keys in all", name, kk.Kind), Value: float64(kk.Keys), Lower: true}
		switch {
		case kk.Keys >= n:
			keys = Figure{Key: fmt.Sprintf("%s: %q keys per socket", name, kk.Kind), Value: float64(kk.Keys) / float64(n), Lower: true}
		case kk.Keys >= rooms:
			keys = Figure{Key: fmt.Sprintf("%s: %q keys per room", name, kk.Kind), Value: float64(kk.Keys) / float64(rooms), Lower: true}
		}
		figs = append(figs, keys,
			Figure{Key: fmt.Sprintf("%s: %q MEMORY USAGE per socket", name, kk.Kind), Unit: "B", Value: float64(kk.Bytes) / float64(n), Lower: true})
	}
	return figs, kinds, nil
}

// memWindow is how many media states RedisMemory keeps in flight.
const memWindow = 32

// subtractKinds is after minus before, kind by kind; kinds with no new key
// are left out.
func subtractKinds(after, before []KeyKind) []KeyKind {
	var out []KeyKind
	for _, a := range after {
		for _, b := range before {
			if b.Kind == a.Kind {
				a.Keys -= b.Keys
				a.Bytes -= b.Bytes
			}
		}
		if a.Keys > 0 || a.Bytes > 0 {
			out = append(out, a)
		}
	}
	return out
}
