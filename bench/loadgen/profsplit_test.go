package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestProfSplit: each sample is charged to the layer of its whole stack:
// a write(2) under the router's code is kernel time, a map lookup inside
// the library is the library's, the collector's worker is GC.
func TestProfSplit(t *testing.T) {
	traces := `File: rtcio-router
Type: cpu
-----------+-------------------------------------------------------
     300ms   internal/runtime/syscall/linux.Syscall6
             syscall.RawSyscall6
             syscall.write
             github.com/rtcio/rtcio-router/router/internal/sio.sysWriter.tryWrite
-----------+-------------------------------------------------------
     100ms   runtime.mapaccess2_faststr
             github.com/zishang520/socket.io/v3/pkg/types.(*emmiter).Emit
             github.com/rtcio/rtcio-router/router.(*Router).relay
-----------+-------------------------------------------------------
      50ms   runtime.scanobject
             runtime.gcDrain
             runtime.gcBgMarkWorker
-----------+-------------------------------------------------------
      50ms   internal/runtime/syscall/linux.Syscall6
             internal/runtime/syscall/linux.EpollWait
             runtime.netpoll
             runtime.findRunnable
-----------+-------------------------------------------------------
`
	var out bytes.Buffer
	if err := profSplit([]string{"1000"}, strings.NewReader(traces), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| kernel: write(2) | 60.0 % | 300.0 µs/msg |",
		"| kernel: epoll_wait (netpoll) | 10.0 % | 50.0 µs/msg |",
		"| GC (marking, sweeping, assists) | 10.0 % | 50.0 µs/msg |",
		"| socket.io library (zishang520) | 20.0 % | 100.0 µs/msg |",
		"| all | 100 % | 500.0 µs/msg |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in\n%s", want, out.String())
		}
	}
	if err := profSplit(nil, strings.NewReader("File: x\n"), &out); err == nil {
		t.Error("no samples: want an error")
	}
}
