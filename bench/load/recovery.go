package load

// Connection state recovery across nodes (server.recovery with cluster:
// set): what a suspended session costs Redis, and how long a client whose
// node stopped takes to get its session back on another node. The nodes
// run with recovery on; the caller starts and stops them (bench/recovery).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rtcio/rtcio-router/bench/sio"
)

// sessionPairs joins n pairs, each alone in a room: A (conns[2i]) on node
// 0 and B (conns[2i+1]) on node 1; then each B relays one envelope to its
// A, so that every A holds an offset to recover from, as a client holds
// the offset of the last event it got. offsets[i] is A i's latest;
// closed[i] (if closed is not nil) is closed when A i's connection ends.
func sessionPairs(ctx context.Context, t Target, kind string, n int, recovery bool, closed []chan struct{}) (conns []*sio.Conn, offsets []atomic.Pointer[string], err error) {
	offsets = make([]atomic.Pointer[string], n)
	var got atomic.Int64
	all := make(chan struct{})
	conns, err = joinRooms(ctx, t, kind, n, 2, func(i int, f []byte) {
		switch {
		case i%2 == 1:
		case f == nil && closed != nil:
			close(closed[i/2])
		case hasPrefix(f, relayEvent):
			if off := sio.Offset(f); off != "" {
				offsets[i/2].Store(&off)
			}
			if got.Add(1) == int64(n) {
				close(all)
			}
		}
	})
	if err != nil {
		return nil, nil, err
	}
	if recovery && conns[0].PID == "" {
		closeAll(conns)
		return nil, nil, errors.New("the nodes sent no session id: is server.recovery on?")
	}
	for i := range n {
		a, b := conns[2*i], conns[2*i+1]
		if err := b.Write(sio.Event("#rtcio:message", []byte(`{"target":"`+a.ID+`","data":{"hello":1}}`))); err != nil {
			closeAll(conns)
			return nil, nil, err
		}
	}
	select {
	case <-all:
	case <-time.After(time.Minute):
		closeAll(conns)
		return nil, nil, fmt.Errorf("%d of %d relays arrived", got.Load(), n)
	case <-ctx.Done():
		closeAll(conns)
		return nil, nil, ctx.Err()
	}
	for i := range n {
		if recovery && offsets[i].Load() == nil {
			closeAll(conns)
			return nil, nil, fmt.Errorf("socket %s got a relay without an offset", conns[2*i].ID)
		}
	}
	return conns, offsets, nil
}

// registryPrefix finds the cluster's key prefix ("{rtcio}:") from its
// suspended set's name, and returns it with that set's size.
func registryPrefix(ctx context.Context, c *redis.Client) (prefix string, suspended int64, err error) {
	keys, err := c.Keys(ctx, "*}:suspended").Result()
	if err != nil || len(keys) == 0 {
		return "", 0, fmt.Errorf("no suspended set in Redis (%v)", err)
	}
	n, err := c.ZCard(ctx, keys[0]).Result()
	return strings.TrimSuffix(keys[0], "suspended"), n, err
}

// sessionBytes sums the MEMORY USAGE of the keys of the sessions of conns:
// their record, rooms, private id and event stream, plus each one's share
// of the suspended set.
func sessionBytes(ctx context.Context, c *redis.Client, prefix string, conns []*sio.Conn) (int64, error) {
	var cmds []*redis.IntCmd
	if _, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, s := range conns {
			for _, k := range []string{"sock:" + s.ID, "rooms:" + s.ID, "pid:" + s.PID, "inbox:" + s.ID} {
				cmds = append(cmds, p.MemoryUsage(ctx, prefix+k, 0))
			}
		}
		cmds = append(cmds, p.MemoryUsage(ctx, prefix+"suspended", 0))
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return 0, err
	}
	var sum int64
	for _, cmd := range cmds {
		sum += cmd.Val()
	}
	return sum, nil
}

// waitSuspended polls until Redis's suspended set holds want sessions.
func waitSuspended(ctx context.Context, c *redis.Client, want int64) (string, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		prefix, n, err := registryPrefix(ctx, c)
		if err == nil && n >= want {
			return prefix, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%d of %d sessions suspended after a minute (%v)", n, want, err)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return "", err
		}
	}
}

// PairsMemory measures what n connected pairs cost Redis, set up as
// SuspendedMemory's are (each alone in a room, A on node 0 and B on node
// 1, one relay from B to A): used_memory (INFO) per socket. Run with
// recovery on and off, it tells what keeping each socket's events costs.
func PairsMemory(ctx context.Context, t Target, n int, recovery bool) ([]Figure, error) {
	if t.Redis == "" || len(t.Nodes) < 2 {
		return nil, errors.New("pairs memory: needs a cluster of two nodes")
	}
	m0, err := redisMemory(t.Redis)
	if err != nil {
		return nil, err
	}
	conns, _, err := sessionPairs(ctx, t, "mem", n, recovery, nil)
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	m1, err := redisMemory(t.Redis)
	if err != nil {
		return nil, err
	}
	state := map[bool]string{false: "off", true: "on"}[recovery]
	return []Figure{{Key: fmt.Sprintf("Redis, %s connected sockets in pairs, recovery %s: used_memory per socket", Count(2*n), state),
		Unit: "B", Value: float64(m1-m0) / float64(2*n), Lower: true}}, nil
}

// SuspendedMemory measures what n suspended sessions cost Redis. n pairs
// join (A on node 0, B on node 1), every A drops its connection as a
// client whose network fails does, so its session is suspended for its
// window; then each B relays missed envelopes (200 B of ICE candidate) to
// its A, which Redis keeps for A's recovery. It reports, per session:
// used_memory (INFO) connected and then suspended, the MEMORY USAGE of the
// session's keys suspended, and the bytes each kept missed event adds.
// The window must outlast the scenario.
func SuspendedMemory(ctx context.Context, t Target, n, missed int) ([]Figure, error) {
	if t.Redis == "" || len(t.Nodes) < 2 {
		return nil, errors.New("suspended memory: needs a cluster of two nodes")
	}
	rc := client(t.Redis)
	defer rc.Close()
	conns, _, err := sessionPairs(ctx, t, "susp", n, true, nil)
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	var as []*sio.Conn
	for i := range n {
		as = append(as, conns[2*i])
	}
	m1, err := redisMemory(t.Redis)
	if err != nil {
		return nil, err
	}
	_, before, err := registryPrefix(ctx, rc)
	if err != nil {
		before = 0 // no set until the first suspension
	}
	closeAll(as)
	prefix, err := waitSuspended(ctx, rc, before+int64(n))
	if err != nil {
		return nil, err
	}
	m2, err := redisMemory(t.Redis)
	if err != nil {
		return nil, err
	}
	keys2, err := sessionBytes(ctx, rc, prefix, as)
	if err != nil {
		return nil, err
	}
	// The missed events: a window of relays in flight per B, and each A's
	// stream counted until all are kept.
	env := Candidate.Data
	for i := range n {
		frame := sio.Event("#rtcio:message", []byte(`{"target":"`+as[i].ID+`","data":`+string(env)+`}`))
		for range missed {
			if err := conns[2*i+1].Write(frame); err != nil {
				return nil, err
			}
		}
	}
	kept := func() (int64, error) {
		cmds := make([]*redis.IntCmd, n)
		if _, err := rc.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, a := range as {
				cmds[i] = p.XLen(ctx, prefix+"inbox:"+a.ID)
			}
			return nil
		}); err != nil {
			return 0, err
		}
		var sum int64
		for _, c := range cmds {
			sum += c.Val()
		}
		return sum, nil
	}
	// Stable and at least every relay: all kept (the cap would stop it
	// short at recovery_max_events per session).
	deadline := time.Now().Add(2 * time.Minute)
	var last int64 = -1
	for {
		k, err := kept()
		if err != nil {
			return nil, err
		}
		if k == last && k >= int64(missed*n) {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("suspended memory: %d events kept after 2 minutes", k)
		}
		last = k
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return nil, err
		}
	}
	m3, err := redisMemory(t.Redis)
	if err != nil {
		return nil, err
	}
	keys3, err := sessionBytes(ctx, rc, prefix, as)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("recovery, %s suspended sessions", Count(n))
	per := func(b int64, k int) float64 { return float64(b) / float64(k) }
	return []Figure{
		{Key: name + ": used_memory added by suspending, per session", Unit: "B", Value: per(m2-m1, n), Lower: true},
		{Key: name + ": MEMORY USAGE of a suspended session's keys", Unit: "B", Value: per(keys2, n), Lower: true},
		{Key: fmt.Sprintf("%s: MEMORY USAGE per missed %s kept (%d per session)", name, Candidate.Name, missed), Unit: "B", Value: per(keys3-keys2, n*missed), Lower: true},
		{Key: fmt.Sprintf("%s: used_memory per missed %s kept", name, Candidate.Name), Unit: "B", Value: per(m3-m2, n*missed), Lower: true},
	}, nil
}

// RecoverElsewhere measures how long a client takes to get its session
// back on another node when its node stops. n pairs join (A on node 0, B
// on node 1); stop then stops node 0 (SIGTERM or SIGKILL: the caller's
// choice), and every A, the moment its connection closes, reconnects to
// node 1 presenting its session and offset, as socket.io-client does with
// no reconnect delay. It reports the time from each A's connection close
// to its CONNECT reply with its old id (recovered), p50/p99/max, and the
// time until all had recovered; a session not recovered is an error.
func RecoverElsewhere(ctx context.Context, t Target, n int, how string, stop func() error) ([]Figure, error) {
	if len(t.Nodes) < 2 {
		return nil, errors.New("recover elsewhere: needs a cluster of two nodes")
	}
	closed := make([]chan struct{}, n)
	for i := range closed {
		closed[i] = make(chan struct{})
	}
	conns, offsets, err := sessionPairs(ctx, t, "recover", n, true, closed)
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	took := make([]int64, n)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []string
		back []*sio.Conn
	)
	for i := range n {
		a := conns[2*i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-closed[i]:
			case <-ctx.Done():
				return
			}
			closedAt := now()
			s, err := sio.DialSession(ctx, t.Nodes[1], a.PID, *offsets[i].Load())
			at := now()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err.Error())
			case s.ID != a.ID:
				errs = append(errs, fmt.Sprintf("%s came back as %s: not recovered", a.ID, s.ID))
				back = append(back, s)
			default:
				took[i] = at - closedAt
				back = append(back, s)
			}
		}()
	}
	start := now()
	if err := stop(); err != nil {
		return nil, err
	}
	wg.Wait()
	all := now() - start
	closeAll(back)
	if len(errs) > 0 {
		return nil, fmt.Errorf("recover elsewhere: %d of %d sessions not recovered, first: %s", len(errs), n, errs[0])
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := slices.Clone(took)
	slices.Sort(s)
	name := fmt.Sprintf("recovery on the other node, %s sessions, node stopped with %s", Count(n), how)
	return []Figure{
		{Key: name + ": close to recovered, p50", Unit: "ms", Value: micros(Percentile(s, 0.50)) / 1e3, Lower: true},
		{Key: name + ": close to recovered, p99", Unit: "ms", Value: micros(Percentile(s, 0.99)) / 1e3, Lower: true},
		{Key: name + ": close to recovered, max", Unit: "ms", Value: micros(s[len(s)-1]) / 1e3, Lower: true},
		{Key: name + ": stop to all recovered", Unit: "ms", Value: micros(all) / 1e3, Lower: true},
	}, nil
}
