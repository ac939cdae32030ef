//go:build unix

package sio

import (
	"net"
	"sync"
	"syscall"
)

// sysWriter tries one write(2) on a socket that the Go runtime keeps in
// non-blocking mode, so the caller learns at once how much the kernel took.
type sysWriter struct{ rc syscall.RawConn }

// rawConnOf returns a non-blocking writer for c, or nil when c is not a
// plain socket (TLS, a test pipe): then every write takes the writer
// goroutine.
func rawConnOf(c net.Conn) rawWriter {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return sysWriter{rc}
}

// tryWrite writes what the socket buffer accepts now: n < len(b) with a nil
// error means "full, finish later".
func (s sysWriter) tryWrite(b []byte) (int, error) {
	// RawConn.Write takes a callback; a closure over this call's variables
	// would be allocated on every message, so the callback and its
	// variables come from a pool instead (no per-connection memory).
	op := writeOps.Get().(*writeOp)
	op.b = b
	err := s.rc.Write(op.fn)
	n, werr := op.n, op.err
	*op = writeOp{fn: op.fn}
	writeOps.Put(op)
	switch {
	case err != nil:
		return 0, err
	case werr == syscall.EAGAIN:
		return 0, nil
	case werr != nil:
		return 0, werr
	}
	return n, nil
}

// writeOp is one tryWrite's callback with its input and results.
type writeOp struct {
	b   []byte
	n   int
	err error
	fn  func(fd uintptr) bool // op.write, bound once
}

var writeOps = sync.Pool{New: func() any {
	op := &writeOp{}
	op.fn = op.write
	return op
}}

func (op *writeOp) write(fd uintptr) bool {
	for {
		op.n, op.err = syscall.Write(int(fd), op.b)
		if op.err != syscall.EINTR {
			return true // never wait: the writer goroutine does
		}
	}
}
