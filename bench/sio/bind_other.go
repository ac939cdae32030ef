//go:build !linux

package sio

import "syscall"

// bindNoPort does nothing where IP_BIND_ADDRESS_NO_PORT does not exist: a
// source address then gets its ports from bind.
func bindNoPort(_, _ string, _ syscall.RawConn) error { return nil }
