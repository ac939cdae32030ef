//go:build !unix

package sio

import "net"

// rawConnOf has no non-blocking write here: every write takes the writer
// goroutine.
func rawConnOf(net.Conn) rawWriter { return nil }
