package load

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rtcio/rtcio-router/bench/sio"
)

// Target is the server under test: its base URL and, when it is a local
// process, its pid, whose /proc entries give CPU time and RSS (0: skip
// those figures).
//
// A cluster is one Target too: Nodes lists the base URLs of its nodes
// (Nodes[0] is URL), and the scenarios spread their sockets over them the
// way a load balancer would put two peers of a call on different nodes
// (the two sockets of a relay pair on two nodes, the members of a room
// alternating). Others are the cluster's other processes (the other
// nodes, Redis): their CPU time counts as the server's, and those with a
// Name are also reported on their own. Redis, the address of the
// cluster's Redis, adds the Redis commands each message or socket cost.
//
// Sources are the local addresses the generator's connections come from,
// round robin (empty: the kernel's choice): the scale run spreads its
// sockets over 127.0.0.2 and up to get past one address's ephemeral ports.
type Target struct {
	URL     string
	PID     int
	Nodes   []string
	Others  []Proc
	Redis   string
	Sources []string
}

// Proc is one more process of a server under test.
type Proc struct {
	Name string // "" is counted in the server's CPU only
	PID  int
}

// node is the URL of node k (taken modulo the nodes): URL when the target
// is one server.
func (t Target) node(k int) string {
	if len(t.Nodes) == 0 {
		return t.URL
	}
	return t.Nodes[k%len(t.Nodes)]
}

// Figure is one measured number of a scenario. Key identifies it across
// rounds and servers; Lower says which direction is better, so a ratio can
// be read as a win or a loss.
type Figure struct {
	Key   string
	Unit  string
	Value float64
	Lower bool
}

// Timing sets how long an open- or closed-loop scenario runs: Warmup is
// discarded, Measure is what the figures describe.
type Timing struct {
	Warmup, Measure time.Duration
}

// epoch is the generator's clock origin: stamps carried in frames are
// nanoseconds since it, read back in the same process.
var epoch = time.Now()

func now() int64 { return int64(time.Since(epoch)) }

// dialConcurrency bounds the handshakes in flight: enough to keep a server
// busy, below the kernel's listen backlog.
const dialConcurrency = 64

// source is the local address of connection i ("": the kernel's choice).
func (t Target) source(i int) string {
	if len(t.Sources) == 0 {
		return ""
	}
	return t.Sources[i%len(t.Sources)]
}

// dialEach opens n connections to t, connection i to node node(i) from
// t.source(i), at most dialConcurrency at a time, and calls each (if not
// nil) on every one as soon as it is connected. On error every connection
// opened so far is closed.
func dialEach(ctx context.Context, t Target, node func(i int) int, n int, each func(i int, c *sio.Conn)) ([]*sio.Conn, error) {
	conns := make([]*sio.Conn, n)
	sem := make(chan struct{}, dialConcurrency)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		if ctx.Err() != nil || len(errc) > 0 {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := sio.DialFrom(ctx, t.node(node(i)), t.source(i))
			if err != nil {
				select {
				case errc <- fmt.Errorf("dial %d of %d: %w", i+1, n, err):
				default:
				}
				return
			}
			conns[i] = c
			if each != nil {
				each(i, c)
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		closeAll(conns)
		return nil, err
	default:
	}
	if err := ctx.Err(); err != nil {
		closeAll(conns)
		return nil, err
	}
	return conns, nil
}

func closeAll(conns []*sio.Conn) {
	for _, c := range conns {
		if c != nil {
			_ = c.Close()
		}
	}
}

// serveAll runs h for every frame each connection receives; h is told the
// connection's index, and gets a nil frame once when the connection ends
// (the recovery scenarios watch for their node going away).
func serveAll(conns []*sio.Conn, h func(i int, f []byte)) {
	for i, c := range conns {
		go func() {
			_ = c.Serve(func(f []byte) { h(i, f) })
			h(i, nil)
		}()
	}
}

var (
	userConnected = sio.Prefix("user-connected")
	initOffer     = sio.Prefix("#rtcio:init-offer")
	relayEvent    = sio.Prefix("#rtcio:message")
	mediaEvent    = sio.Prefix("media-state")
)

// presence counts the user-connected and #rtcio:init-offer events a set of
// rooms must produce when they fill: each of a room's k members hears of
// the k-1 others, and each pair gets one init-offer.
type presence struct {
	uc, io         atomic.Int64
	wantUC, wantIO int64
	done           chan struct{}
	once           sync.Once
}

func newPresence(rooms, k int) *presence {
	n := int64(rooms)
	return &presence{wantUC: n * int64(k*(k-1)), wantIO: n * int64(k*(k-1)/2), done: make(chan struct{})}
}

// see counts f if it is a presence event and reports whether it was one.
func (p *presence) see(f []byte) bool {
	switch {
	case hasPrefix(f, userConnected):
		p.check(p.uc.Add(1), p.io.Load())
	case hasPrefix(f, initOffer):
		p.check(p.uc.Load(), p.io.Add(1))
	default:
		return false
	}
	return true
}

func (p *presence) check(uc, io int64) {
	if uc >= p.wantUC && io >= p.wantIO {
		p.once.Do(func() { close(p.done) })
	}
}

func (p *presence) wait(ctx context.Context, limit time.Duration) error {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
		return fmt.Errorf("presence incomplete after %v: user-connected %d/%d, init-offer %d/%d",
			limit, p.uc.Load(), p.wantUC, p.io.Load(), p.wantIO)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func hasPrefix(f, p []byte) bool { return len(f) >= len(p) && string(f[:len(p)]) == string(p) }

func joinFrame(room, name string) []byte {
	return sio.Event("join-room", []byte(`{"roomId":"`+room+`","name":"`+name+`"}`))
}

// runID keeps room names of consecutive scenarios on one server apart.
var runID atomic.Int64

func roomName(kind string, i int) string {
	return kind + strconv.FormatInt(runID.Load(), 10) + "-" + strconv.Itoa(i)
}

// joinRooms connects size×rooms sockets and joins member j of room r
// (conns[r*size+j], connected to node j) to it, then waits until every
// presence event arrived. h gets every frame that is not a presence event.
func joinRooms(ctx context.Context, t Target, kind string, rooms, size int, h func(i int, f []byte)) ([]*sio.Conn, error) {
	runID.Add(1)
	p := newPresence(rooms, size)
	conns, err := dialEach(ctx, t, func(i int) int { return i % size }, rooms*size, nil)
	if err != nil {
		return nil, err
	}
	serveAll(conns, func(i int, f []byte) {
		if !p.see(f) && h != nil {
			h(i, f)
		}
	})
	for i, c := range conns {
		if err := c.Write(joinFrame(roomName(kind, i/size), "p"+strconv.Itoa(i))); err != nil {
			closeAll(conns)
			return nil, err
		}
	}
	// A minute, or 10 ms a socket for the largest (the cluster suite's
	// memory scenario joins 10k sockets at once).
	if err := p.wait(ctx, max(60*time.Second, time.Duration(rooms*size)*10*time.Millisecond)); err != nil {
		closeAll(conns)
		return nil, err
	}
	return conns, nil
}

// cpuMeter reads a process's CPU time over an interval; pid 0 reads 0.
type cpuMeter struct {
	pid int
	t0  time.Duration
}

func startCPU(pid int) cpuMeter {
	m := cpuMeter{pid: pid}
	if pid != 0 {
		m.t0, _ = CPUTime(pid)
	}
	return m
}

func (m cpuMeter) since() time.Duration {
	if m.pid == 0 {
		return 0
	}
	t, _ := CPUTime(m.pid)
	return t - m.t0
}

// serverMeter reads a target's CPU time over an interval, all its
// processes summed and each named one apart, and the Redis commands it ran.
type serverMeter struct {
	main   cpuMeter
	others []cpuMeter
	names  []string
	redis  string
	cmds0  int64
}

func startServer(t Target) serverMeter {
	m := serverMeter{main: startCPU(t.PID), redis: t.Redis}
	for _, o := range t.Others {
		m.others = append(m.others, startCPU(o.PID))
		m.names = append(m.names, o.Name)
	}
	if t.Redis != "" {
		m.cmds0, _ = RedisCommands(t.Redis)
	}
	return m
}

// serverUse is what a serverMeter read: CPU of every process, that of the
// named ones, and Redis commands (-1: no Redis).
type serverUse struct {
	cpu   time.Duration
	named map[string]time.Duration
	cmds  int64
}

func (m serverMeter) since() serverUse {
	u := serverUse{cpu: m.main.since(), named: map[string]time.Duration{}, cmds: -1}
	for i, o := range m.others {
		d := o.since()
		u.cpu += d
		if m.names[i] != "" {
			u.named[m.names[i]] += d
		}
	}
	if m.redis != "" {
		if n, err := RedisCommands(m.redis); err == nil {
			u.cmds = n - m.cmds0
		}
	}
	return u
}

// figures are the per-unit figures of u over count units (messages,
// sockets): the server's CPU, each named process's, and Redis commands.
// prefix is the figure's name up to "server CPU per …".
func (u serverUse) figures(t Target, prefix, per string, count int64) []Figure {
	if t.PID == 0 || count <= 0 {
		return nil
	}
	figs := []Figure{{Key: prefix + "server CPU per " + per, Unit: "µs", Value: micros(u.cpu.Nanoseconds()) / float64(count), Lower: true}}
	for _, o := range t.Others {
		if d, ok := u.named[o.Name]; ok && o.Name != "" {
			figs = append(figs, Figure{Key: prefix + o.Name + " CPU per " + per, Unit: "µs", Value: micros(d.Nanoseconds()) / float64(count), Lower: true})
			delete(u.named, o.Name)
		}
	}
	if u.cmds >= 0 {
		figs = append(figs, Figure{Key: prefix + "Redis commands per " + per, Unit: "", Value: float64(u.cmds) / float64(count), Lower: true})
	}
	return figs
}

// recorder keeps the latency samples stamped inside the measured window.
type recorder struct {
	mu       sync.Mutex
	from, to atomic.Int64 // stamps outside [from, to) are warm-up or drain
	samples  []int64
}

func newRecorder() *recorder {
	r := &recorder{}
	r.from.Store(1 << 62)
	return r
}

// window opens the measured window now for d.
func (r *recorder) window(d time.Duration) {
	t := now()
	r.to.Store(t + int64(d))
	r.from.Store(t)
}

func (r *recorder) add(stamp, at int64) {
	if stamp < r.from.Load() || stamp >= r.to.Load() {
		return
	}
	r.mu.Lock()
	r.samples = append(r.samples, at-stamp)
	r.mu.Unlock()
}

func (r *recorder) sorted() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := slices.Clone(r.samples)
	slices.Sort(s)
	return s
}

// Percentile returns the q-quantile (0..1) of sorted samples by nearest
// rank, 0 for none.
func Percentile(sorted []int64, q float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func micros(ns int64) float64 { return float64(ns) / 1e3 }

// self is the generator's pid: its own CPU time shows how busy its core
// was, the proof that it was not the bottleneck.
var self = os.Getpid()

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// BenchRules is the router's rules file src with the per-socket relay
// limit turned off (limits.relay: off). Its default, 1000 envelopes/s per
// socket, is right for browsers but is far below what one generator socket
// sends when saturating the relay, and the Node reference has no limit: with
// it on, the router would drop envelopes instead of doing the same work.
func BenchRules(src []byte) []byte {
	out := append([]byte(nil), src...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return append(out, "\n# bench: the relay limit is off, as on the Node reference.\nlimits:\n  relay: off\n"...)
}
