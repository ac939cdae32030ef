package load

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rtcio/rtcio-router/bench/sio"
)

// JoinStorm connects rooms×k sockets at once, each joining its room as soon
// as it is connected (member i joins room i%rooms, so every room fills
// concurrently), and times until every peer has all its user-connected and
// #rtcio:init-offer events: the load of a call platform's busy hour.
func JoinStorm(ctx context.Context, t Target, rooms, k int) ([]Figure, error) {
	runID.Add(1)
	n := rooms * k
	p := newPresence(rooms, k)
	cpu := startServer(t)
	start := time.Now()
	// Member j of a room is socket i = j*rooms + r: on a cluster the
	// members of a room alternate nodes.
	conns, err := dialEach(ctx, t, func(i int) int { return i / rooms }, n, func(i int, c *sio.Conn) {
		go func() { _ = c.Serve(func(f []byte) { p.see(f) }) }()
		_ = c.Write(joinFrame(roomName("storm", i%rooms), "p"+strconv.Itoa(i)))
	})
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	if err := p.wait(ctx, 120*time.Second); err != nil {
		return nil, err
	}
	took := time.Since(start)
	name := fmt.Sprintf("join storm %d×%d (%s sockets)", rooms, k, Count(n))
	figs := []Figure{{Key: name + ": completion", Unit: "ms", Value: float64(took.Microseconds()) / 1e3, Lower: true}}
	return append(figs, cpu.since().figures(t, name+": ", "socket", int64(n))...), nil
}

// Count writes a socket count the way the tables do: 1000 is "1k".
func Count(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

// Idle connects n sockets that then do nothing, and reports the server's
// resident memory per socket: VmRSS after connecting (and a settling pause)
// minus VmRSS before. It needs the server's pid.
func Idle(ctx context.Context, t Target, n int, settle time.Duration) ([]Figure, error) {
	figs, _, conns, err := idle(ctx, t, n, settle, fmt.Sprintf("idle %s sockets: ", Count(n)))
	closeAll(conns)
	return figs, err
}

// IdleRelease is Idle, then every connection closed: it also reports the
// server's VmRSS before the sockets opened and after they all closed, read
// 5 s after the close and again at maxWait. Two reads, not "until it holds
// still": a server may hold its memory for seconds and then give most of it
// back at once (rtcio-router checks every 5 s), which a stability test
// would miss. What a server keeps after a busy hour is memory no other
// process on the host gets back.
func IdleRelease(ctx context.Context, t Target, n int, settle, maxWait time.Duration) ([]Figure, error) {
	name := fmt.Sprintf("idle %s sockets: ", Count(n))
	figs, base, conns, err := idle(ctx, t, n, settle, name)
	closeAll(conns)
	if err != nil {
		return figs, err
	}
	figs = append(figs, Figure{Key: name + "RSS before the sockets opened", Unit: "MB", Value: float64(base) / 1e6, Lower: true})
	closed := time.Now()
	for _, at := range []time.Duration{min(5*time.Second, maxWait), maxWait} {
		if at <= time.Since(closed) {
			continue // maxWait ≤ 5 s: one read
		}
		if err := sleepCtx(ctx, time.Until(closed.Add(at))); err != nil {
			return figs, err
		}
		rss, err := RSS(t.PID)
		if err != nil {
			return figs, err
		}
		figs = append(figs, Figure{Key: fmt.Sprintf("%sRSS after every connection closed, +%v", name, at), Unit: "MB", Value: float64(rss) / 1e6, Lower: true})
	}
	return figs, nil
}

// idle connects n idle sockets and returns the figures, the VmRSS before
// and the open connections (the caller closes them, also on error).
func idle(ctx context.Context, t Target, n int, settle time.Duration, name string) ([]Figure, int64, []*sio.Conn, error) {
	if t.PID == 0 {
		return nil, 0, nil, fmt.Errorf("idle: needs the server's pid")
	}
	base, err := RSS(t.PID)
	if err != nil {
		return nil, 0, nil, err
	}
	start := time.Now()
	conns, err := dialEach(ctx, t, func(i int) int { return i }, n, func(_ int, c *sio.Conn) {
		go func() { _ = c.Serve(func([]byte) {}) }()
	})
	if err != nil {
		return nil, base, nil, err
	}
	took := time.Since(start)
	if err := sleepCtx(ctx, settle); err != nil {
		return nil, base, conns, err
	}
	rss, err := RSS(t.PID)
	if err != nil {
		return nil, base, conns, err
	}
	return []Figure{
		{Key: name + "RSS per socket", Unit: "KiB", Value: float64(rss-base) / 1024 / float64(n), Lower: true},
		{Key: name + "connect all", Unit: "ms", Value: float64(took.Microseconds()) / 1e3, Lower: true},
	}, base, conns, nil
}

// Scale connects n idle sockets (from t.Sources, when the ephemeral ports of
// one address do not suffice) and, with them all open, runs the relay round
// trips of pairs more pairs at a fixed rate: how long it takes to connect a
// large population, what it costs in memory, and whether the live calls
// among it suffer.
func Scale(ctx context.Context, t Target, n, pairs int, rate float64, settle time.Duration, tm Timing) ([]Figure, error) {
	name := fmt.Sprintf("scale %s idle sockets: ", Count(n))
	figs, _, conns, err := idle(ctx, t, n, settle, name)
	defer closeAll(conns)
	if err != nil {
		return figs, err
	}
	rss, err := RSS(t.PID)
	if err != nil {
		return figs, err
	}
	figs = append(figs, Figure{Key: name + "RSS", Unit: "MB", Value: float64(rss) / 1e6, Lower: true})
	rt, err := Relay(ctx, t, pairs, Candidate, rate, tm, nil, 0)
	for i := range rt {
		rt[i].Key = fmt.Sprintf("scale %s idle sockets + %d pairs: ", Count(n), pairs) + rt[i].Key
	}
	return append(figs, rt...), err
}

// Envelope is the data of a #rtcio:message: what a browser sends, with the
// generator's "t" stamp added.
type Envelope struct {
	Name string // in figure keys, e.g. "200 B candidate"
	Data []byte // JSON object holding "t":0 once
}

// Candidate is a trickled ICE candidate, about 200 bytes as relayed.
var Candidate = Envelope{Name: "200 B candidate", Data: []byte(`{"t":0,"candidate":{"candidate":"candidate:842163049 1 udp 1677729535 192.0.2.17 50113 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag 8Zk3 network-cost 999","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"8Zk3"}}`)}

// SDP is an offer description of about 4 KB, the size of an audio+video
// offer with a data channel.
var SDP = Envelope{Name: "4 KB SDP", Data: sdpEnvelope(4096)}

func sdpEnvelope(size int) []byte {
	lines := []string{
		"v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0 1 2",
		"a=extmap-allow-mixed", "a=msid-semantic: WMS stream",
		"m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126", "c=IN IP4 0.0.0.0", "a=rtcp:9 IN IP4 0.0.0.0",
		"a=ice-ufrag:8Zk3", "a=ice-pwd:Hl2zO1pQ0xq6dYV3mC5t9bJr", "a=ice-options:trickle",
		"a=fingerprint:sha-256 6B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08",
		"a=setup:actpass", "a=mid:0", "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level", "a=sendrecv",
		"a=rtcp-mux", "a=rtpmap:111 opus/48000/2", "a=rtcp-fb:111 transport-cc", "a=fmtp:111 minptime=10;useinbandfec=1",
		"m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101 102", "a=rtpmap:96 VP8/90000", "a=rtcp-fb:96 goog-remb",
		"a=rtcp-fb:96 transport-cc", "a=rtcp-fb:96 ccm fir", "a=rtcp-fb:96 nack", "a=rtcp-fb:96 nack pli",
		"a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96", "a=ssrc-group:FID 2231627014 632943048",
		"a=ssrc:2231627014 cname:4TOk42mSjXCkVIa6", "a=ssrc:2231627014 msid:stream track-video",
	}
	var b strings.Builder
	for b.Len() < size-60 {
		for _, l := range lines {
			if b.Len() >= size-60 {
				break
			}
			b.WriteString(l)
			b.WriteString(`\r\n`)
		}
	}
	return []byte(`{"t":0,"description":{"type":"offer","sdp":"` + b.String() + `"}}`)
}

// pairs sets up n pairs of sockets, each pair alone in a room, with stamped
// ping (A→B) and pong (B→A) envelopes. onPong runs on A's reader for each
// pong with its stamp; B answers every ping itself.
type pairs struct {
	conns      []*sio.Conn // A of pair i is conns[2i], B is conns[2i+1]
	ping, pong []sio.Stamp
}

func relayStamp(from, to *sio.Conn, data []byte) sio.Stamp {
	return sio.NewStamp(sio.Event("#rtcio:message", []byte(`{"source":"`+from.ID+`","target":"`+to.ID+`","data":`+string(data)+`}`)))
}

func newPairs(ctx context.Context, t Target, n int, env Envelope, onPong func(pair int, stamp int64)) (*pairs, error) {
	p := &pairs{}
	ready := make(chan struct{})
	var bufs [][]byte
	conns, err := joinRooms(ctx, t, "relay", n, 2, func(i int, f []byte) {
		if !hasPrefix(f, relayEvent) {
			return
		}
		<-ready
		stamp, ok := sio.ReadStamp(f)
		if !ok {
			return
		}
		if i%2 == 1 { // B: answer the ping with the same stamp
			bufs[i] = p.pong[i/2].Build(bufs[i], stamp)
			_ = p.conns[i].Write(bufs[i])
			return
		}
		onPong(i/2, stamp)
	})
	if err != nil {
		return nil, err
	}
	p.conns = conns
	bufs = make([][]byte, len(conns))
	for i := range n {
		a, b := conns[2*i], conns[2*i+1]
		p.ping = append(p.ping, relayStamp(a, b, env.Data))
		p.pong = append(p.pong, relayStamp(b, a, env.Data))
	}
	close(ready)
	return p, nil
}

// Relay ping-pongs envelopes between n pairs at a fixed offered rate
// (messages per second, pings and pongs counted alike), open loop: pings
// are sent on schedule whatever the replies do. It reports round-trip
// percentiles and the server's CPU per relayed message. While it runs,
// during calls the function (if not nil) every `every`: the reload
// scenario sends SIGHUP with it.
func Relay(ctx context.Context, t Target, n int, env Envelope, rate float64, tm Timing, during func(), every time.Duration) ([]Figure, error) {
	rec := newRecorder()
	var got atomic.Int64
	p, err := newPairs(ctx, t, n, env, func(_ int, stamp int64) {
		rec.add(stamp, now())
		got.Add(1)
	})
	if err != nil {
		return nil, err
	}
	defer closeAll(p.conns)
	if during != nil {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					during()
				}
			}
		}()
	}
	interval := time.Duration(float64(time.Second) * 2 / rate) // a round trip is two messages
	var cpu serverMeter
	var sent, sentInWindow int64
	buf := make([]byte, 0, len(env.Data)+128)
	start := time.Now()
	measureAt := start.Add(tm.Warmup)
	end := measureAt.Add(tm.Measure)
	measuring := false
	for k := int64(0); ; k++ {
		due := start.Add(time.Duration(k) * interval)
		if !due.Before(end) {
			break
		}
		if !measuring && !due.Before(measureAt) {
			measuring = true
			sentInWindow = sent
			rec.window(tm.Measure)
			cpu = startServer(t)
		}
		if d := time.Until(due); d > 200*time.Microsecond {
			if err := sleepCtx(ctx, d); err != nil {
				return nil, err
			}
		}
		pair := int(k % int64(n))
		buf = p.ping[pair].Build(buf, now())
		if err := p.conns[2*pair].Write(buf); err != nil {
			return nil, err
		}
		sent++
	}
	serverCPU := cpu.since()
	sentInWindow = sent - sentInWindow
	if err := sleepCtx(ctx, 200*time.Millisecond); err != nil { // late pongs
		return nil, err
	}
	s := rec.sorted()
	if len(s) == 0 {
		return nil, fmt.Errorf("relay: no round trip completed (%d pings sent)", sent)
	}
	if lost := sent - got.Load(); lost > sent/100 {
		return nil, fmt.Errorf("relay: %d of %d pings got no pong", lost, sent)
	}
	name := fmt.Sprintf("relay RTT %s @ %s msgs/s", env.Name, strconv.FormatFloat(rate, 'f', -1, 64))
	figs := []Figure{
		{Key: name + ": p50", Unit: "µs", Value: micros(Percentile(s, 0.50)), Lower: true},
		{Key: name + ": p99", Unit: "µs", Value: micros(Percentile(s, 0.99)), Lower: true},
		{Key: name + ": p99.9", Unit: "µs", Value: micros(Percentile(s, 0.999)), Lower: true},
	}
	return append(figs, serverCPU.figures(t, name+": ", "msg", 2*sentInWindow)...), nil
}

// RelayMax saturates the relay: each of n pairs keeps window pings in
// flight and sends a new one the moment a pong arrives (closed loop). It
// reports the messages per second sustained over the measured window, the
// server's CPU per message, and how busy the generator's own core was.
func RelayMax(ctx context.Context, t Target, n, window int, env Envelope, tm Timing) ([]Figure, error) {
	msgs, stop, err := relayLoop(ctx, t, n, window, env)
	if err != nil {
		return nil, err
	}
	defer stop()
	return saturated(ctx, t, fmt.Sprintf("relay max %s", env.Name), "msgs/s", "msg", tm, msgs)
}

// relayLoop starts the closed relay loop of RelayMax and returns the count
// of messages relayed so far and the function that ends the loop.
func relayLoop(ctx context.Context, t Target, n, window int, env Envelope) (msgs func() int64, stop func(), err error) {
	var pongs atomic.Int64
	var stopped atomic.Bool
	var p *pairs
	bufs := make([][]byte, n)
	ready := make(chan struct{})
	p, err = newPairs(ctx, t, n, env, func(pair int, _ int64) {
		pongs.Add(1)
		if stopped.Load() {
			return
		}
		<-ready
		bufs[pair] = p.ping[pair].Build(bufs[pair], now())
		_ = p.conns[2*pair].Write(bufs[pair])
	})
	if err != nil {
		return nil, nil, err
	}
	stop = func() { stopped.Store(true); closeAll(p.conns) }
	close(ready)
	for pair := range n {
		for range window {
			if err := p.conns[2*pair].Write(p.ping[pair].Build(nil, now())); err != nil {
				stop()
				return nil, nil, err
			}
		}
	}
	return func() int64 { return 2 * pongs.Load() }, stop, nil
}

// saturated measures a closed-loop scenario already running: count returns
// the messages (or deliveries) so far.
func saturated(ctx context.Context, t Target, name, rateUnit, per string, tm Timing, count func() int64) ([]Figure, error) {
	if err := sleepCtx(ctx, tm.Warmup); err != nil {
		return nil, err
	}
	c0, cpu, gen, t0 := count(), startServer(t), startCPU(self), time.Now()
	if err := sleepCtx(ctx, tm.Measure); err != nil {
		return nil, err
	}
	c1, serverCPU, genCPU, el := count(), cpu.since(), gen.since(), time.Since(t0)
	msgs := c1 - c0
	if msgs == 0 {
		return nil, fmt.Errorf("%s: nothing delivered in %v", name, tm.Measure)
	}
	figs := []Figure{{Key: name + ": throughput", Unit: rateUnit, Value: float64(msgs) / el.Seconds()}}
	figs = append(figs, serverCPU.figures(t, name+": ", per, msgs)...)
	figs = append(figs, Figure{Key: name + ": generator core busy", Unit: "%", Value: 100 * genCPU.Seconds() / el.Seconds(), Lower: true})
	return figs, nil
}

// fanout joins rooms of size sockets; member 0 of each room sends
// media-state (stamped) and the others receive it. onDeliver runs on a
// receiver's reader with the room and the stamp.
type fanout struct {
	conns []*sio.Conn
	size  int
	event []sio.Stamp // per room
}

func newFanout(ctx context.Context, t Target, rooms, size int, onDeliver func(room int, stamp int64)) (*fanout, error) {
	ready := make(chan struct{})
	conns, err := joinRooms(ctx, t, "fan", rooms, size, func(i int, f []byte) {
		if !hasPrefix(f, mediaEvent) {
			return
		}
		if stamp, ok := sio.ReadStamp(f); ok {
			<-ready
			onDeliver(i/size, stamp)
		}
	})
	if err != nil {
		return nil, err
	}
	fo := &fanout{conns: conns, size: size}
	for r := range rooms {
		sender := conns[r*size]
		fo.event = append(fo.event, sio.NewStamp(sio.Event("media-state",
			[]byte(`{"roomId":"`+roomName("fan", r)+`","mic":true,"cam":false,"id":"`+sender.ID+`","t":0}`))))
	}
	close(ready)
	return fo, nil
}

func (fo *fanout) send(room int, buf []byte) ([]byte, error) {
	buf = fo.event[room].Build(buf, now())
	return buf, fo.conns[room*fo.size].Write(buf)
}

// FanOut sends media-state into rooms of size members at a fixed offered
// rate of deliveries per second (each event reaches size-1 peers), open
// loop, and reports the delivery latency percentiles.
func FanOut(ctx context.Context, t Target, rooms, size int, deliveries float64, tm Timing) ([]Figure, error) {
	rec := newRecorder()
	fo, err := newFanout(ctx, t, rooms, size, func(_ int, stamp int64) { rec.add(stamp, now()) })
	if err != nil {
		return nil, err
	}
	defer closeAll(fo.conns)
	interval := time.Duration(float64(time.Second) * float64(size-1) / deliveries)
	start := time.Now()
	measureAt, end := start.Add(tm.Warmup), start.Add(tm.Warmup+tm.Measure)
	var cpu serverMeter
	var sent, sentInWindow int64
	measuring := false
	var buf []byte
	for k := int64(0); ; k++ {
		due := start.Add(time.Duration(k) * interval)
		if !due.Before(end) {
			break
		}
		if !measuring && !due.Before(measureAt) {
			measuring, sentInWindow = true, sent
			rec.window(tm.Measure)
			cpu = startServer(t)
		}
		if d := time.Until(due); d > 200*time.Microsecond {
			if err := sleepCtx(ctx, d); err != nil {
				return nil, err
			}
		}
		if buf, err = fo.send(int(k%int64(rooms)), buf); err != nil {
			return nil, err
		}
		sent++
	}
	serverCPU := cpu.since()
	sentInWindow = sent - sentInWindow
	if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
		return nil, err
	}
	s := rec.sorted()
	if len(s) == 0 {
		return nil, fmt.Errorf("fan-out: nothing delivered")
	}
	name := fmt.Sprintf("fan-out room of %d @ %s deliveries/s", size, strconv.FormatFloat(deliveries, 'f', -1, 64))
	figs := []Figure{
		{Key: name + ": p50", Unit: "µs", Value: micros(Percentile(s, 0.50)), Lower: true},
		{Key: name + ": p99", Unit: "µs", Value: micros(Percentile(s, 0.99)), Lower: true},
	}
	return append(figs, serverCPU.figures(t, name+": ", "delivery", sentInWindow*int64(size-1))...), nil
}

// FanOutMax saturates fan-out: each room's sender keeps window events in
// flight and sends another each time a whole event's worth of deliveries
// (size-1) has arrived.
func FanOutMax(ctx context.Context, t Target, rooms, size, window int, tm Timing) ([]Figure, error) {
	var total atomic.Int64
	var stop atomic.Bool
	per := make([]atomic.Int64, rooms)
	bufs := make([][]byte, rooms)
	var fo *fanout
	ready := make(chan struct{})
	fo, err := newFanout(ctx, t, rooms, size, func(room int, _ int64) {
		total.Add(1)
		if per[room].Add(1)%int64(size-1) != 0 || stop.Load() {
			return
		}
		<-ready
		// Receivers of one room run concurrently: one buffer per sender
		// would race, so each completion builds its own frame.
		_, _ = fo.send(room, nil)
	})
	if err != nil {
		return nil, err
	}
	defer closeAll(fo.conns)
	defer stop.Store(true)
	close(ready)
	for r := range rooms {
		for range window {
			if bufs[r], err = fo.send(r, bufs[r]); err != nil {
				return nil, err
			}
		}
	}
	name := fmt.Sprintf("fan-out max room of %d", size)
	return saturated(ctx, t, name, "deliveries/s", "delivery", tm, total.Load)
}
