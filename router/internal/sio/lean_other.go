//go:build !linux

package sio

import "errors"

// leanPoller is Linux's epoll reader (lean_linux.go); elsewhere lean
// sessions are unavailable and every session is the library's.
type leanPoller struct{}

func newLeanPoller(func(*leanConn, []byte, error)) (*leanPoller, error) {
	return nil, errors.New("lean WebSocket sessions need epoll (Linux)")
}

func (*leanPoller) add(*leanConn) error { return errors.New("unavailable") }
func (*leanPoller) remove(*leanConn)    {}
func (*leanPoller) pause(*leanConn)     {}
func (*leanPoller) resume(*leanConn)    {}
func (*leanPoller) stop()               {}
