//go:build !unix

package router

import "net"

// rawConnOf has no non-blocking write here: every write takes the writer
// goroutine.
func rawConnOf(net.Conn) rawWriter { return nil }
