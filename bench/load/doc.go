// Package load holds the benchmark scenarios of bench/ (join storm, relay
// round trips and saturation, idle sockets, room fan-out, relay under
// reload) and the /proc readings that go with them. Each scenario drives
// one socket.io server at a URL with the sio client and returns Figures;
// which server runs, on which core, and how rounds are combined is the
// loadgen command's business, so the same scenarios run against
// rtcio-router, the Node reference, the echo server, or an in-process
// router in tests.
package load
