package router_test

// The relay's byte budget and its congested-receiver rule, over real
// sockets: what one room-mate sends must never get another disconnected.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rtcio/rtcio-router/internal/jsclient"
	"github.com/rtcio/rtcio-router/router"
)

// sioEvent is one socket.io EVENT a test peer received. For a relay
// envelope, source is its stamped sender; data is the envelope's data as
// JSON when short (long ones are only counted), size the frame's length.
type sioEvent struct {
	name, source, data string
	size               int
}

// eventLog collects what a test peer receives, for tests to wait on.
type eventLog struct {
	mu     sync.Mutex
	events []sioEvent
	kicked bool  // the server sent DISCONNECT ("41"): io server disconnect
	gone   error // why the connection ended; nil while it is open
}

// add records one engine.io message; it reports false for a ping, which
// the caller answers.
func (l *eventLog) add(msg []byte) bool {
	if string(msg) == "2" {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case string(msg) == "41":
		l.kicked = true
	case len(msg) > 2 && string(msg[:2]) == "42":
		var args []json.RawMessage
		if json.Unmarshal(msg[2:], &args) != nil || len(args) == 0 {
			break
		}
		ev := sioEvent{size: len(msg)}
		_ = json.Unmarshal(args[0], &ev.name)
		if len(args) > 1 {
			var env struct {
				Source string          `json:"source"`
				Data   json.RawMessage `json:"data"`
			}
			if json.Unmarshal(args[1], &env) == nil && len(env.Data) <= 1024 {
				ev.source, ev.data = env.Source, string(env.Data)
			} else {
				ev.source = env.Source
			}
		}
		l.events = append(l.events, ev)
	}
	return true
}

func (l *eventLog) end(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gone == nil {
		l.gone = err
	}
}

// state returns a copy of what was received and whether the connection is
// still open and not disconnected by the server.
func (l *eventLog) state() (events []sioEvent, kicked bool, gone error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]sioEvent(nil), l.events...), l.kicked, l.gone
}

// wait polls until cond holds or timeout passes, and reports which.
func (l *eventLog) wait(timeout time.Duration, cond func(events []sioEvent, kicked bool, gone error) bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond(l.state()) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// count is how many events named name from source (any source if "") were
// received.
func count(events []sioEvent, name, source string) int {
	n := 0
	for _, e := range events {
		if e.name == name && (source == "" || e.source == source) {
			n++
		}
	}
	return n
}

// fastPeer is a socket.io client over a bare WebSocket that reads as fast
// as it can: the attackers and the well-behaved room-mates.
type fastPeer struct {
	eventLog
	ws  *websocket.Conn
	id  string
	wmu sync.Mutex
}

func dialFast(t *testing.T, url string) *fastPeer {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(url, "http://", "ws://", 1)+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	p := &fastPeer{ws: ws}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, m, err := ws.ReadMessage(); err != nil || !strings.HasPrefix(string(m), "0{") {
		t.Fatalf("engine open: %q %v", m, err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		t.Fatal(err)
	}
	_, m, err := ws.ReadMessage()
	var hello struct{ Sid string }
	if err != nil || json.Unmarshal([]byte(strings.TrimPrefix(string(m), "40")), &hello) != nil || hello.Sid == "" {
		t.Fatalf("connect reply %q %v", m, err)
	}
	_ = ws.SetReadDeadline(time.Time{})
	p.id = hello.Sid
	go func() {
		for {
			_, m, err := ws.ReadMessage()
			if err != nil {
				p.end(err)
				return
			}
			if !p.add(m) {
				_ = p.send([]byte("3"))
			}
		}
	}()
	return p
}

// send writes one engine.io message. Writes race with the server closing
// the connection, so an error is returned, not fatal.
func (p *fastPeer) send(msg []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return p.ws.WriteMessage(websocket.TextMessage, msg)
}

func (p *fastPeer) emit(t *testing.T, name string, data any) {
	t.Helper()
	if err := p.send([]byte(event(name, data))); err != nil {
		t.Fatalf("emit %s: %v", name, err)
	}
}

// slowReader is a socket.io client on a hand-made WebSocket over TCP that
// it reads at most rate bytes a second, with a small receive buffer so
// that the kernel holds little of what the server sends: a receiver on a
// slow link, as the server sees it. Nothing else slows it down.
type slowReader struct {
	eventLog
	conn net.Conn
	id   string
	wmu  sync.Mutex
}

func dialSlow(t *testing.T, url string, rate float64) *slowReader {
	t.Helper()
	host := strings.TrimPrefix(url, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.(*net.TCPConn).SetReadBuffer(64 << 10)
	r := &slowReader{conn: conn}
	br := bufio.NewReaderSize(&throttled{r: conn, rate: rate}, 4096)
	req := "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	if m, err := readWSMessage(br); err != nil || !strings.HasPrefix(string(m), "0{") {
		t.Fatalf("engine open: %q %v", m, err)
	}
	r.send("40")
	m, err := readWSMessage(br)
	var hello struct{ Sid string }
	if err != nil || json.Unmarshal([]byte(strings.TrimPrefix(string(m), "40")), &hello) != nil || hello.Sid == "" {
		t.Fatalf("connect reply %q %v", m, err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	r.id = hello.Sid
	go func() {
		for {
			m, err := readWSMessage(br)
			if err != nil {
				r.end(err)
				return
			}
			if !r.add(m) {
				r.send("3")
			}
		}
	}()
	return r
}

func (r *slowReader) send(msg string) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	_, _ = r.conn.Write(rawFrame(msg))
}

// throttled reads at most rate bytes a second, never faster after a pause:
// an idle reader saves up no credit.
type throttled struct {
	r    io.Reader
	rate float64
	next time.Time
}

func (t *throttled) Read(p []byte) (int, error) {
	if len(p) > 16<<10 {
		p = p[:16<<10]
	}
	n, err := t.r.Read(p)
	if now := time.Now(); t.next.Before(now) {
		t.next = now
	}
	t.next = t.next.Add(time.Duration(float64(n) / t.rate * float64(time.Second)))
	time.Sleep(time.Until(t.next))
	return n, err
}

// readWSMessage reads one message of unmasked server frames (RFC 6455 5.2),
// skipping control frames; a close frame ends the connection.
func readWSMessage(br *bufio.Reader) ([]byte, error) {
	var msg []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return nil, err
		}
		n := int64(h[1] & 0x7F)
		switch n {
		case 126:
			var ext [2]byte
			if _, err := io.ReadFull(br, ext[:]); err != nil {
				return nil, err
			}
			n = int64(ext[0])<<8 | int64(ext[1])
		case 127:
			var ext [8]byte
			if _, err := io.ReadFull(br, ext[:]); err != nil {
				return nil, err
			}
			n = 0
			for _, b := range ext {
				n = n<<8 | int64(b)
			}
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(br, payload); err != nil {
			return nil, err
		}
		switch op := h[0] & 0x0F; {
		case op == 8:
			return nil, errors.New("close frame")
		case op >= 8: // ping, pong
			continue
		}
		msg = append(msg, payload...)
		if h[0]&0x80 != 0 {
			return msg, nil
		}
	}
}

// relayRoom starts a router on src with a receiver reading rate bytes a
// second and the official JS client as a well-behaved room-mate, all in
// one room. The attackers join later.
func relayRoom(t *testing.T, src []byte, rate float64) (url string, slow *slowReader, good *jsclient.Client) {
	t.Helper()
	_, url = startRouter(t, src)
	slow = dialSlow(t, url, rate)
	slow.send(event("join-room", map[string]any{"roomId": "r", "name": "slow"}))
	// Either join may land first: each side hears of the other once, by
	// backfill or by broadcast, which is all the checks below wait for.
	good = jsclient.Start(t).Connect("good", url, wsOnly).WithT(t)
	good.WaitConnected()
	good.Emit("join-room", map[string]any{"roomId": "r", "name": "good"})
	good.WaitFor("user-connected", 5*time.Second)
	if !slow.wait(5*time.Second, func(ev []sioEvent, _ bool, _ error) bool { return count(ev, "user-connected", "") == 1 }) {
		t.Fatal("the slow reader never saw the room-mate join")
	}
	return url, slow, good
}

// joinAttacker connects a fast peer into the relay room and waits until
// the slow reader knows of it.
func joinAttacker(t *testing.T, url string, slow *slowReader, name string) *fastPeer {
	t.Helper()
	a := dialFast(t, url)
	before, _, _ := slow.state()
	a.emit(t, "join-room", map[string]any{"roomId": "r", "name": name})
	if !slow.wait(5*time.Second, func(ev []sioEvent, _ bool, _ error) bool {
		return count(ev, "user-connected", "") > count(before, "user-connected", "")
	}) {
		t.Fatalf("the slow reader never saw %s join", name)
	}
	return a
}

// attackEnvelope is the frame of the attack: a relay envelope carrying a
// 61 KiB string, just under the default max_payload of 64 KiB.
func attackEnvelope(target string) []byte {
	return []byte(`42["#rtcio:message",{"target":"` + target + `","data":"` + strings.Repeat("x", 61<<10) + `"}]`)
}

// burst sends n copies of frame from a as fast as the connection takes
// them; it stops at the first write error (the server may close a).
func burst(t *testing.T, a *fastPeer, frame []byte, n int) {
	t.Helper()
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := a.send(frame); err != nil {
			t.Logf("attacker write %d failed: %v", i, err)
			return
		}
	}
	t.Logf("%d envelopes of %d bytes written in %v", n, len(frame), time.Since(start).Round(time.Millisecond))
}

// sync waits until every event a sent before now has been handled: a's
// events are handled in order, and media-state reaches the room-mate.
func syncPeer(t *testing.T, a *fastPeer, good *jsclient.Client) {
	t.Helper()
	a.emit(t, "media-state", map[string]any{"roomId": "r", "mic": true, "cam": true, "from": a.id})
	for {
		ev := good.WaitFor("media-state", 30*time.Second)
		if ev.Args[0].(map[string]any)["from"] == a.id {
			return
		}
	}
}

// expectStillServed checks that the slow reader is connected and, once it
// has read what was queued for it, gets a later relay from the
// well-behaved room-mate. (While it is congested, envelopes to it are
// dropped whoever sends them: that is the rule.)
func expectStillServed(t *testing.T, slow *slowReader, good *jsclient.Client) {
	t.Helper()
	last, since := -1, time.Now()
	slow.wait(60*time.Second, func(ev []sioEvent, kicked bool, gone error) bool {
		if len(ev) != last {
			last, since = len(ev), time.Now()
		}
		return time.Since(since) > 300*time.Millisecond || kicked || gone != nil
	})
	good.Emit("#rtcio:message", map[string]any{"target": slow.id, "data": map[string]any{"hello": "still there?"}})
	ok := slow.wait(30*time.Second, func(ev []sioEvent, kicked bool, gone error) bool {
		return count(ev, "#rtcio:message", good.ID()) > 0 || kicked || gone != nil
	})
	events, kicked, gone := slow.state()
	if !ok || kicked || gone != nil {
		t.Fatalf("the slow receiver was dropped (disconnected %v, connection: %v) or never got the room-mate's relay; it received %d envelopes",
			kicked, gone, count(events, "#rtcio:message", ""))
	}
	time.Sleep(100 * time.Millisecond)
	if _, kicked, gone := slow.state(); kicked || gone != nil {
		t.Fatalf("the slow receiver was dropped after all: disconnected %v, connection: %v", kicked, gone)
	}
}

// TestRelayBytesSlowReceiverSurvivesBurst is the attack: a room-mate sends
// 300 relay envelopes of 61 KiB in a burst (18 MB, within the default
// envelope burst of 2000) to a peer reading at 6 MB/s. Counted in
// messages only, it all went through and the peer, not the sender, was
// dropped as a slow consumer (8 MiB backlog). With the byte budget the
// sender's excess is dropped: the receiver stays and still gets a later
// relay from another room-mate.
func TestRelayBytesSlowReceiverSurvivesBurst(t *testing.T) {
	url, slow, good := relayRoom(t, builtinRules(t), 6e6)
	a := joinAttacker(t, url, slow, "attacker")
	burst(t, a, attackEnvelope(slow.id), 300)
	syncPeer(t, a, good)
	expectStillServed(t, slow, good)
	events, _, _ := slow.state()
	got := count(events, "#rtcio:message", a.id)
	t.Logf("the slow receiver got %d of the attacker's 300 envelopes", got)
	if got >= 300 {
		t.Fatalf("all %d envelopes relayed: the byte budget did not apply", got)
	}
	if _, kicked, gone := a.state(); !kicked && gone == nil {
		// Throttled, not thrown out: 283 drops are below the default flood
		// threshold of 1000. It may relay again once its budget refills.
		a.emit(t, "#rtcio:message", map[string]any{"target": slow.id, "data": "later"})
		if !slow.wait(10*time.Second, func(ev []sioEvent, _ bool, _ error) bool { return count(ev, "#rtcio:message", a.id) > got }) {
			t.Fatal("the throttled sender's budget never refilled")
		}
	}
}

// withLimits is the built-in rules with a limits: section.
func withLimits(t *testing.T, limits string) []byte {
	t.Helper()
	src := string(builtinRules(t))
	if !strings.Contains(src, "\nstores:") || strings.Contains(src, "\nlimits:") {
		t.Fatal("rtcio.yaml changed shape: put the limits elsewhere")
	}
	return []byte(strings.Replace(src, "\nstores:", "\nlimits:\n"+limits+"\n\nstores:", 1))
}

// TestRelayCongestedReceiverDropsTheSender: without the byte budget, the
// congested-receiver rule alone stops the attack. Once half the
// receiver's outgoing allowance waits (4 MiB), envelopes to it are dropped
// and counted against the sender: with the default flood threshold it is
// throttled, with a low one disconnected; the receiver stays either way.
func TestRelayCongestedReceiverDropsTheSender(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits string
		kicked bool
	}{
		{"throttled", "  relay: { bytes: off }", false},
		{"flood control", "  relay: { bytes: off }\n  flood: { drops: 50, within: 10s }", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// 3 MB/s: however slowly a loaded machine sends the burst,
			// the receiver falls behind by more than half its allowance.
			url, slow, good := relayRoom(t, withLimits(t, tc.limits), 3e6)
			a := joinAttacker(t, url, slow, "attacker")
			burst(t, a, attackEnvelope(slow.id), 300)
			if tc.kicked {
				if !a.wait(30*time.Second, func(_ []sioEvent, kicked bool, _ error) bool { return kicked }) {
					t.Fatal("the sender pushing into a congested peer was not disconnected by flood control")
				}
			} else {
				syncPeer(t, a, good)
				if _, kicked, gone := a.state(); kicked || gone != nil {
					t.Fatalf("the sender was disconnected (%v, %v) below the flood threshold", kicked, gone)
				}
			}
			expectStillServed(t, slow, good)
			events, _, _ := slow.state()
			got := count(events, "#rtcio:message", a.id)
			t.Logf("the slow receiver got %d of the attacker's 300 envelopes", got)
			if got >= 300 {
				t.Fatal("every envelope was relayed to a congested receiver")
			}
		})
	}
}

// TestRelayCongestedReceiverManySenders: each of sixteen room-mates stays
// within its own byte budget (16 envelopes of 61 KiB, just under 1 MiB),
// but together they send 16 MB at once to a peer reading at 6 MB/s, far
// more than the 8 MiB it may have queued. The congested-receiver rule
// drops the excess; the receiver stays connected and is still served.
func TestRelayCongestedReceiverManySenders(t *testing.T) {
	url, slow, good := relayRoom(t, builtinRules(t), 6e6)
	var attackers []*fastPeer
	for i := range 16 {
		attackers = append(attackers, joinAttacker(t, url, slow, fmt.Sprintf("attacker-%d", i)))
	}
	frame := attackEnvelope(slow.id)
	var wg sync.WaitGroup
	for _, a := range attackers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 16 {
				if a.send(frame) != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, a := range attackers {
		syncPeer(t, a, good)
	}
	expectStillServed(t, slow, good)
	events, _, _ := slow.state()
	t.Logf("the slow receiver got %d of 256 envelopes", count(events, "#rtcio:message", "")-1)
}

// TestRelayBytesAdmitsMeshStorm: the default byte budget lets a newcomer
// to a 30-peer mesh do what WebRTC does: relay to each of 29 room-mates an
// offer with a 4 KB SDP and 25 ICE candidates of ~300 B, all at once
// (~340 KB, 754 envelopes). Every envelope arrives, in order.
func TestRelayBytesAdmitsMeshStorm(t *testing.T) {
	_, url := startRouter(t, builtinRules(t))
	const peers, candidates = 29, 25
	var mates []*fastPeer
	for i := range peers {
		p := dialFast(t, url)
		p.emit(t, "join-room", map[string]any{"roomId": "mesh", "name": fmt.Sprint("peer-", i)})
		mates = append(mates, p)
	}
	// The first to join hears of every other one: then all are in.
	if !mates[0].wait(10*time.Second, func(ev []sioEvent, _ bool, _ error) bool { return count(ev, "user-connected", "") == peers-1 }) {
		t.Fatal("the room never filled")
	}
	newcomer := dialFast(t, url)
	newcomer.emit(t, "join-room", map[string]any{"roomId": "mesh", "name": "newcomer"})
	for _, p := range mates {
		if !p.wait(10*time.Second, func(ev []sioEvent, _ bool, _ error) bool { return count(ev, "#rtcio:init-offer", newcomer.id) > 0 }) {
			t.Fatal("a peer never saw the newcomer join")
		}
	}

	sdp := strings.Repeat("a=candidate:842163049 1 udp 1677729535 203.0.113.7 44323 typ srflx\r\n", 60) // 4,080 B
	var frames [][]byte
	total := 0
	for i, p := range mates {
		offer := event("#rtcio:message", map[string]any{"target": p.id, "data": map[string]any{"description": map[string]any{"type": "offer", "sdp": sdp}, "seq": 0}})
		frames = append(frames, []byte(offer))
		total += len(offer)
		for c := 1; c <= candidates; c++ {
			cand := event("#rtcio:message", map[string]any{"target": p.id, "data": map[string]any{"seq": c, "candidate": map[string]any{
				"candidate":        fmt.Sprintf("candidate:%d 1 udp 1677729535 203.0.113.%d %d typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag abcd network-id 1 network-cost 999", 842163049+c, i, 40000+c),
				"sdpMid":           "0",
				"sdpMLineIndex":    0,
				"usernameFragment": "abcdEFGH",
			}}})
			frames = append(frames, []byte(cand))
			total += len(cand)
		}
	}
	avg := (total - peers*len(frames[0])) / (peers * candidates)
	t.Logf("%d envelopes, %d bytes (offer %d B, candidates ~%d B)", len(frames), total, len(frames[0]), avg)
	if total < 300_000 || avg < 280 {
		t.Fatalf("the storm is smaller than the one the default is sized for: %d bytes, candidates %d B", total, avg)
	}
	for _, f := range frames {
		if err := newcomer.send(f); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range mates {
		want := candidates + 1
		if !p.wait(20*time.Second, func(ev []sioEvent, _ bool, _ error) bool { return count(ev, "#rtcio:message", newcomer.id) >= want }) {
			events, _, _ := p.state()
			t.Fatalf("peer %d got %d of %d envelopes: some were dropped", i, count(events, "#rtcio:message", newcomer.id), want)
		}
		events, _, _ := p.state()
		seq := 0
		for _, e := range events {
			if e.name != "#rtcio:message" {
				continue
			}
			var d struct{ Seq int }
			if e.data != "" {
				_ = json.Unmarshal([]byte(e.data), &d)
			} else {
				d.Seq = 0 // the offer, too long to keep
			}
			if d.Seq != seq {
				t.Fatalf("peer %d: envelope %d has seq %d", i, seq, d.Seq)
			}
			seq++
		}
	}
	if _, kicked, gone := newcomer.state(); kicked || gone != nil {
		t.Fatalf("the newcomer was disconnected: %v %v", kicked, gone)
	}
}

// TestRelayByteBudgetCountsEncodedSize runs the byte budget in-process
// (router.Local, as `rtcio-router test` does): an envelope decoded into Go
// values weighs exactly what it encodes to, HTML escapes included, so two
// pass a burst of twice that and not one byte less; and a drop by the byte
// budget is answered by the relay's reject.
func TestRelayByteBudgetCountsEncodedSize(t *testing.T) {
	env := map[string]any{"target": "b", "data": map[string]any{
		"text": strings.Repeat(`<a href="x">&amp;</a> é`+"\n\u2028", 24), "n": 1.5, "ok": true, "none": nil, "list": []any{1.0, "two"},
	}}
	enc, err := json.Marshal(env) // HTML-escaped, as the relay writes it
	if err != nil {
		t.Fatal(err)
	}
	size := len(enc)
	for _, tc := range []struct {
		burst  int
		passes int
	}{{2*size - 1, 1}, {2 * size, 2}} {
		src := withLimits(t, fmt.Sprintf("  relay:\n    bytes: 1KiB/s\n    bytes_burst: %d\n    reject: { emit: slow-down, payload: { size: %d } }", tc.burst, size))
		l, err := router.NewLocal(router.Options{RulesFile: "t.yaml", Source: src})
		if err != nil {
			t.Fatal(err)
		}
		l.SetClock(time.UnixMilli(1700000000000)) // no refill
		for _, id := range []string{"a", "b"} {
			if err := l.Connect(id, nil, nil); err != nil {
				t.Fatal(err)
			}
			if _, _, err := l.Send(id, "join-room", []any{map[string]any{"roomId": "r", "name": id}}, false); err != nil {
				t.Fatal(err)
			}
		}
		l.Deliveries()
		for i := 0; i < 3; i++ {
			if _, _, err := l.Send("a", "#rtcio:message", []any{env}, false); err != nil {
				t.Fatal(err)
			}
		}
		relayed, rejected := 0, 0
		for _, d := range l.Deliveries() {
			switch {
			case d.To == "b" && d.Event == "#rtcio:message":
				relayed++
			case d.To == "a" && d.Event == "slow-down":
				rejected++
			default:
				t.Errorf("unexpected delivery %+v", d)
			}
		}
		if relayed != tc.passes || rejected != 3-tc.passes {
			t.Errorf("envelope of %d bytes, burst %d: relayed %d and rejected %d, want %d and %d",
				size, tc.burst, relayed, rejected, tc.passes, 3-tc.passes)
		}
	}
}
