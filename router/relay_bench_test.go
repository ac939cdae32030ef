package router_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestMain lets this test binary double as the relay load generator: a
// separate process, so the server's CPU time is measured alone.
func TestMain(m *testing.M) {
	if url := os.Getenv("RTCIO_LOADGEN_URL"); url != "" {
		n, _ := strconv.Atoi(os.Getenv("RTCIO_LOADGEN_N"))
		if err := loadgen(url, n); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// lgConn is a minimal socket.io v4 client over a raw WebSocket: the least
// client work per message, so the server is what is measured.
type lgConn struct {
	ws *websocket.Conn
	id string
}

func lgDial(url string) (*lgConn, error) {
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(url, "http://", "ws://", 1)+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		return nil, err
	}
	c := &lgConn{ws: ws}
	if _, err := c.read(); err != nil { // engine open
		return nil, err
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		return nil, err
	}
	msg, err := c.read()
	if err != nil {
		return nil, err
	}
	var hello struct{ Sid string }
	if err := json.Unmarshal([]byte(strings.TrimPrefix(msg, "40")), &hello); err != nil {
		return nil, fmt.Errorf("connect reply %q: %w", msg, err)
	}
	c.id = hello.Sid
	return c, nil
}

// read returns the next socket.io frame, answering engine pings.
func (c *lgConn) read() (string, error) {
	for {
		_ = c.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			return "", err
		}
		if string(b) == "2" {
			if err := c.ws.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
				return "", err
			}
			continue
		}
		return string(b), nil
	}
}

func (c *lgConn) emit(frame []byte) error { return c.ws.WriteMessage(websocket.TextMessage, frame) }

// loadgen joins two sockets to one room and relays n candidate-sized
// envelopes from A to B with a bounded window, then prints the elapsed
// time in nanoseconds.
func loadgen(url string, n int) error {
	a, err := lgDial(url)
	if err != nil {
		return err
	}
	b, err := lgDial(url)
	if err != nil {
		return err
	}
	for _, c := range []*lgConn{a, b} {
		if err := c.emit([]byte(`42["join-room",{"roomId":"bench","name":"x"}]`)); err != nil {
			return err
		}
	}
	if _, err := b.read(); err != nil { // b: user-connected about a (or a's, see below)
		return err
	}
	frame := []byte(`42["#rtcio:message",{"target":"` + b.id + `","data":{"candidate":{"candidate":"candidate:842163049 1 udp 1677729535 127.0.0.1 50000 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag abcd network-cost 999","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}}}]`)
	const window = 256 // below the server's per-socket pending limit
	received := make(chan error, 1)
	acked := make(chan struct{}, window)
	start := time.Now()
	go func() {
		for got := 0; got < n; {
			msg, err := b.read()
			if err != nil {
				received <- err
				return
			}
			if strings.HasPrefix(msg, `42["#rtcio:message"`) {
				got++
				acked <- struct{}{}
			}
		}
		received <- nil
	}()
	for i := 0; i < n; i++ {
		if i >= window {
			<-acked
		}
		if err := a.emit(frame); err != nil {
			return err
		}
	}
	if err := <-received; err != nil {
		return err
	}
	fmt.Println(time.Since(start).Nanoseconds())
	return nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRelayThroughput relays b.N #rtcio:message envelopes (~300 B)
// between two sockets of one room through the real server over WebSocket.
// The load generator is a separate process; server-cpu-ns/msg is this
// process's CPU time (user+system, getrusage) per relayed message, which a
// saturated generator cannot hide. It runs with metrics on and off
// (metrics.enabled), one after the other, so -count=N alternates them and
// their cost is measured in the same run.
func BenchmarkRelayThroughput(b *testing.B) {
	for _, mode := range []string{"on", "off"} {
		b.Run("metrics="+mode, func(b *testing.B) { benchRelayThroughput(b, mode == "on") })
	}
}

func benchRelayThroughput(b *testing.B, metrics bool) {
	// One pair relays far past any real call's rate, so the per-socket
	// relay limit (1000/s by default) is off: this measures the ceiling.
	src := strings.Replace(string(builtinRules(b)), "\nstores:", "\nlimits:\n  relay: off\n\nstores:", 1)
	if !metrics {
		src = "metrics: {enabled: false}\n" + src
	}
	_, url := startRouter(b, []byte(src))
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "RTCIO_LOADGEN_URL="+url, "RTCIO_LOADGEN_N="+strconv.Itoa(b.N))
	cmd.Stderr = os.Stderr
	b.ResetTimer()
	cpu0 := cpuTime()
	out, err := cmd.Output()
	cpu := cpuTime() - cpu0
	b.StopTimer()
	if err != nil {
		b.Fatalf("loadgen: %v", err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		b.Fatalf("loadgen output %q", out)
	}
	b.ReportMetric(float64(b.N)/(float64(ns)/1e9), "msgs/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "server-cpu-ns/msg")
}
