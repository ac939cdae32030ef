package sio

// frameWriter is how WebSocket frames leave the server, on the library's
// WebSocket transport (ws.go) and on lean sessions (lean.go) alike.
//
// Why one writer for both: the write path is where a slow reader must cost
// a bounded backlog and never a blocked sender, and where the order of
// frames from concurrent senders is decided. Writes are tried at once,
// without blocking, from the goroutine that sends (one non-blocking
// write(2); see tryWrite). Only when the kernel's socket buffer is full
// does a goroutine take over and finish the write, and everything sent to
// that connection meanwhile is appended to a backlog that goes out in one
// write. unsentPackets and unsentBytes count what was handed over but has
// not reached the kernel yet, for the slow-consumer caps (MaxOutgoing,
// MaxOutgoingBytes); a write that makes no progress for writeTimeout ends
// the connection.

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// writerOwner is the connection a frameWriter writes for.
type writerOwner interface {
	// writeFailed ends the connection after a write failed (the backlog
	// is already dropped); it may run on any goroutine that wrote.
	writeFailed(err error)
	// closeNow closes the connection; the writer calls it once the
	// backlog of a closing connection is out.
	closeNow()
}

// frameWriter serialises one connection's writes (see the file comment).
type frameWriter struct {
	nc           net.Conn
	raw          rawWriter // nil: every write goes through the writer goroutine
	writeTimeout time.Duration
	owner        writerOwner

	mu          sync.Mutex
	writing     bool    // a goroutine owns nc's writes; others append to backlog
	backlog     *[]byte // frames waiting for the owner, in order
	backlogPkts int     // engine packets in backlog
	closing     bool    // the connection closes once the backlog is out
	closed      bool    // nc is closed (or about to be): drop further writes
	handedOff   bool    // a hand-off wrote the close frame: drop further writes

	// unsentPackets and unsentBytes count what was handed to write but
	// has not reached the kernel yet (a partial write and the backlog).
	// The slow-consumer caps add them to whatever else a connection
	// queues, so a slow reader is dropped the same way whichever buffer
	// its data waits in.
	unsentPackets atomic.Int64
	unsentBytes   atomic.Int64
}

// unsent reports what waits in the writer: the connection's part of the
// outbound backlog.
func (w *frameWriter) unsent() (packets, bytes int64) {
	return w.unsentPackets.Load(), w.unsentBytes.Load()
}

// write sends the frames in buf (taking ownership of it; they hold packets
// engine packets) after everything written before. The first writer tries
// the socket at once; while a writer goroutine is active the frames join its
// backlog instead. last marks the hand-off's close frame: nothing is
// written after it.
func (w *frameWriter) write(buf *[]byte, packets int, last bool) {
	w.mu.Lock()
	if w.closed || w.closing || w.handedOff {
		w.mu.Unlock()
		putFrameBuf(buf)
		return
	}
	w.handedOff = last
	if w.writing {
		w.unsentPackets.Add(int64(packets))
		w.unsentBytes.Add(int64(len(*buf)))
		w.backlogPkts += packets
		if w.backlog == nil {
			w.backlog = buf
		} else {
			*w.backlog = append(*w.backlog, *buf...)
			putFrameBuf(buf)
		}
		w.mu.Unlock()
		return
	}
	w.writing = true
	w.mu.Unlock()

	n := 0
	if w.raw != nil {
		var err error
		if n, err = w.raw.tryWrite(*buf); err != nil {
			putFrameBuf(buf)
			w.failed(err)
			return
		}
	}
	if n < len(*buf) {
		w.unsentPackets.Add(int64(packets))
		w.unsentBytes.Add(int64(len(*buf) - n))
		go w.drain(buf, n, packets)
		return
	}
	putFrameBuf(buf)
	if w.releaseWriter() {
		go w.drain(nil, 0, 0)
	}
}

// releaseWriter gives up ownership of writes, unless a backlog or a close
// arrived meanwhile: then it reports true and the caller must drain.
func (w *frameWriter) releaseWriter() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.backlog != nil || w.closing {
		return true
	}
	w.writing = false
	return false
}

// drain is the writer goroutine: it finishes buf (holding packets engine
// packets) from off, then writes the backlog until there is none, blocking
// with the write timeout.
func (w *frameWriter) drain(buf *[]byte, off, packets int) {
	for {
		if buf != nil {
			err := w.writeBlocking((*buf)[off:])
			w.unsentPackets.Add(-int64(packets))
			w.unsentBytes.Add(-int64(len(*buf) - off))
			putFrameBuf(buf)
			if err != nil {
				w.failed(err)
				return
			}
		}
		w.mu.Lock()
		buf, off, packets = w.backlog, 0, w.backlogPkts
		w.backlog, w.backlogPkts = nil, 0
		if buf == nil {
			w.writing = false
			closing := w.closing && !w.closed
			w.mu.Unlock()
			if closing {
				w.owner.closeNow()
			}
			return
		}
		w.mu.Unlock()
	}
}

// failed ends the connection after a failed write, from whichever
// goroutine owned the writes: the backlog is dropped (and uncounted), and
// the owner hears of the error.
func (w *frameWriter) failed(err error) {
	w.mu.Lock()
	w.writing, w.closed = false, true
	if w.backlog != nil {
		w.unsentPackets.Add(-int64(w.backlogPkts))
		w.unsentBytes.Add(-int64(len(*w.backlog)))
		putFrameBuf(w.backlog)
		w.backlog, w.backlogPkts = nil, 0
	}
	w.mu.Unlock()
	w.owner.writeFailed(err)
}

// writeBlocking writes b whole, giving up after the write timeout (or the
// close grace once DoClose has run).
func (w *frameWriter) writeBlocking(b []byte) error {
	for len(b) > 0 {
		timeout := w.writeTimeout
		w.mu.Lock()
		if w.closing {
			timeout = wsCloseGrace
		}
		w.mu.Unlock()
		_ = w.nc.SetWriteDeadline(time.Now().Add(timeout))
		n, err := w.nc.Write(b)
		b = b[n:]
		if err != nil {
			return err
		}
	}
	_ = w.nc.SetWriteDeadline(time.Time{})
	return nil
}

// writeControl writes a control frame (pong, close) with the payload;
// last marks a close frame after which nothing more is written.
func (w *frameWriter) writeControl(op byte, payload []byte, last bool) {
	buf := getFrameBuf()
	*buf = appendFrameHeader(*buf, op, len(payload))
	*buf = append(*buf, payload...)
	w.write(buf, 0, last)
}

// closeAfterWrites closes the connection (owner.closeNow) once what was
// written to it is out: at once when nothing is being written, else by the
// writer goroutine when its backlog is done, a blocked write getting
// wsCloseGrace from now. between, when not nil, runs once further writes
// are refused and before the close.
func (w *frameWriter) closeAfterWrites(between func()) {
	w.mu.Lock()
	w.closing = true
	busy := w.writing && !w.closed
	w.mu.Unlock()
	if between != nil {
		between()
	}
	if busy {
		_ = w.nc.SetWriteDeadline(time.Now().Add(wsCloseGrace))
		return
	}
	w.owner.closeNow()
}

// markClosed refuses every further write: the connection is closed or
// about to be.
func (w *frameWriter) markClosed() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}
