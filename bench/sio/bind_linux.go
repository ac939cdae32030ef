package sio

import "syscall"

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (linux/in.h, Linux 4.2):
// with it, binding a source address leaves the port to connect, which then
// needs it unique only for the whole 4-tuple. Without it bind picks a port
// free on that address alone, and the previous server's sockets in
// TIME_WAIT (tens of thousands after a scale run) exhaust the range.
const ipBindAddressNoPort = 24

// bindNoPort is a net.Dialer Control function setting it.
func bindNoPort(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	}); err != nil {
		return err
	}
	return serr
}
