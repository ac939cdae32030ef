package sio

import (
	"encoding/binary"
	"sync"
	"time"
)

// wsFrame is one WebSocket frame a client sent, its payload unmasked in
// place.
type wsFrame struct {
	fin     bool
	op      byte
	payload []byte
}

// cutFrame's verdicts besides a frame.
const (
	frameOK = iota
	frameIncomplete
	frameTooBig
	frameBad
)

// cutFrame cuts the first frame off b (RFC 6455 5.2): incomplete until all
// of it arrived; too big over limit; bad when it breaks the protocol for a
// server (unmasked, reserved bits without an extension, a control frame
// over 125 bytes or fragmented). The payload is unmasked in b only once
// the frame is complete, so an incomplete one can be cut again later.
func cutFrame(b []byte, limit int64) (f wsFrame, rest []byte, status int) {
	if len(b) < 2 {
		return f, b, frameIncomplete
	}
	f.fin, f.op = b[0]&0x80 != 0, b[0]&0x0F
	if b[0]&0x70 != 0 || b[1]&0x80 == 0 {
		return f, b, frameBad
	}
	n, h := uint64(b[1]&0x7F), 2
	switch n {
	case 126:
		if len(b) < 4 {
			return f, b, frameIncomplete
		}
		n, h = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return f, b, frameIncomplete
		}
		n, h = binary.BigEndian.Uint64(b[2:]), 10
	}
	if f.op >= 0x8 && (n > 125 || !f.fin) {
		return f, b, frameBad
	}
	if n > uint64(limit) {
		return f, b, frameTooBig
	}
	if uint64(len(b)) < uint64(h)+4+n {
		return f, b, frameIncomplete
	}
	mask := [4]byte(b[h : h+4])
	f.payload = b[h+4 : h+4+int(n)]
	unmask(f.payload, mask)
	return f, b[h+4+int(n):], frameOK
}

// unmask XORs p with the client's mask, eight bytes at a time.
func unmask(p []byte, mask [4]byte) {
	m4 := binary.LittleEndian.Uint32(mask[:])
	m8 := uint64(m4)<<32 | uint64(m4)
	i := 0
	for ; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], binary.LittleEndian.Uint64(p[i:])^m8)
	}
	for ; i < len(p); i++ {
		p[i] ^= mask[i&3]
	}
}

// leanWheel is the heartbeat of every lean connection: one goroutine and
// a ring of slots, one per tick, each holding the connections due then.
// Each connection is in one slot at most (leanConn.wheelSlot, wheelIdx):
// scheduling moves it, ending takes it out, so the wheel never keeps a
// closed connection's memory until its slot comes round.
type leanWheel struct {
	tick  time.Duration
	onDue func(*leanConn, time.Time)

	mu    sync.Mutex
	slots [][]*leanConn
	last  int64 // the last tick handed out
	quit  chan struct{}
	once  sync.Once
}

// newLeanWheel starts a wheel fine enough for interval and timeout: a
// tick of a twentieth of the shorter, between 5 ms and 250 ms.
func newLeanWheel(interval, timeout time.Duration, onDue func(*leanConn, time.Time)) *leanWheel {
	tick := min(interval, timeout) / 20
	tick = max(5*time.Millisecond, min(tick, 250*time.Millisecond))
	w := &leanWheel{tick: tick, onDue: onDue, quit: make(chan struct{})}
	w.slots = make([][]*leanConn, int((interval+timeout)/tick)+4)
	w.last = time.Now().UnixNano() / int64(tick)
	go w.run()
	return w
}

// schedule makes lc due at (or the tick after the last handed out).
func (w *leanWheel) schedule(lc *leanConn, at time.Time) {
	t := at.UnixNano()/int64(w.tick) + 1
	w.mu.Lock()
	defer w.mu.Unlock()
	w.removeLocked(lc)
	t = max(t, w.last+1)
	if limit := w.last + int64(len(w.slots)) - 1; t > limit {
		t = limit
	}
	i := int(t % int64(len(w.slots)))
	lc.wheelSlot, lc.wheelIdx = i, len(w.slots[i])
	w.slots[i] = append(w.slots[i], lc)
	lc.mu.Lock()
	lc.due = t
	lc.mu.Unlock()
}

// remove takes lc out of the wheel (it ended).
func (w *leanWheel) remove(lc *leanConn) {
	w.mu.Lock()
	w.removeLocked(lc)
	w.mu.Unlock()
}

// removeLocked swaps lc out of its slot, if it is in one; under w.mu.
func (w *leanWheel) removeLocked(lc *leanConn) {
	if lc.wheelSlot < 0 {
		return
	}
	s := w.slots[lc.wheelSlot]
	last := len(s) - 1
	moved := s[last]
	s[lc.wheelIdx], moved.wheelIdx = moved, lc.wheelIdx
	s[last] = nil
	w.slots[lc.wheelSlot] = s[:last]
	lc.wheelSlot = -1
}

func (w *leanWheel) run() {
	tk := time.NewTicker(w.tick)
	defer tk.Stop()
	for {
		select {
		case <-w.quit:
			return
		case now := <-tk.C:
			for _, d := range w.take(now) {
				d.lc.mu.Lock()
				current := d.lc.due == d.tick // not rescheduled since it was taken
				d.lc.mu.Unlock()
				if current {
					w.onDue(d.lc, now)
				}
			}
		}
	}
}

// dueConn is a connection taken from the wheel at tick.
type dueConn struct {
	lc   *leanConn
	tick int64
}

// take empties the slots of every tick up to now.
func (w *leanWheel) take(now time.Time) []dueConn {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []dueConn
	for upto := now.UnixNano() / int64(w.tick); w.last < upto; {
		w.last++
		i := int(w.last % int64(len(w.slots)))
		for _, lc := range w.slots[i] {
			lc.wheelSlot = -1
			out = append(out, dueConn{lc, w.last})
		}
		clear(w.slots[i]) // the array must not keep closed connections
		w.slots[i] = w.slots[i][:0]
	}
	return out
}

// stop ends the wheel's goroutine.
func (w *leanWheel) stop() { w.once.Do(func() { close(w.quit) }) }
