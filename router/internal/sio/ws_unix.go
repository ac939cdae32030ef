//go:build unix

package sio

import (
	"net"
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
	var n int
	var werr error
	err := s.rc.Write(func(fd uintptr) bool {
		for {
			n, werr = syscall.Write(int(fd), b)
			if werr != syscall.EINTR {
				return true // never wait: the writer goroutine does
			}
		}
	})
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
